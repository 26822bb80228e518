package openapi

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
)

// mediaRange is one entry of an Accept header.
type mediaRange struct {
	typ, sub string
	q        float64
}

// negotiate returns the offer the Accept header prefers, "" if it accepts
// none. An absent header accepts anything, and so gets the first offer.
// Ties in quality go to the more specific range, then to header order.
func negotiate(accept string, offers []string) string {
	if strings.TrimSpace(accept) == "" {
		return offers[0]
	}
	var ranges []mediaRange
	for _, part := range strings.Split(accept, ",") {
		params := strings.Split(part, ";")
		typ, sub, ok := strings.Cut(strings.TrimSpace(params[0]), "/")
		if !ok {
			if strings.TrimSpace(params[0]) != "*" {
				continue
			}
			typ, sub = "*", "*"
		}
		mr := mediaRange{typ: strings.ToLower(typ), sub: strings.ToLower(sub), q: 1}
		for _, p := range params[1:] {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.TrimSpace(k) == "q" {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					mr.q = q
				}
			}
		}
		if mr.q > 0 {
			ranges = append(ranges, mr)
		}
	}
	specificity := func(m mediaRange) int {
		switch {
		case m.typ == "*":
			return 0
		case m.sub == "*":
			return 1
		}
		return 2
	}
	slices.SortStableFunc(ranges, func(a, b mediaRange) int {
		return cmp.Or(cmp.Compare(b.q, a.q), cmp.Compare(specificity(b), specificity(a)))
	})
	for _, m := range ranges {
		for _, o := range offers {
			typ, sub, _ := strings.Cut(o, "/")
			if (m.typ == "*" || m.typ == typ) && (m.sub == "*" || m.sub == sub) {
				return o
			}
		}
	}
	return ""
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q <= 0 {
				continue
			}
		}
		return true
	}
	return false
}

// etagMatches implements If-None-Match's weak comparison.
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
