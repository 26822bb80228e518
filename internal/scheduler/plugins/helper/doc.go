// Package helper holds what several plugins share: taint/toleration matching, node
// selector and required node affinity matching, and score normalization helpers.
package helper
