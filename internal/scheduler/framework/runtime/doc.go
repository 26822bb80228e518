// Package runtime runs a profile's plugins at each extension point: it builds them from
// factories, keeps them in order per extension point, applies score weights and
// normalization, and evaluates nominated pods. It implements framework.Handle.
package runtime
