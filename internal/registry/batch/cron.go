package batch

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed cron schedule: the standard five fields (minute, hour, day of month,
// month, day of week), a descriptor such as @daily, or @every <duration>.
type Schedule struct {
	minute, hour, dom, month, dow uint64
	// domStar and dowStar record a "*" (or "?") day field: when either day field is a star,
	// both must match; otherwise matching either is enough, as in cron.
	domStar, dowStar bool
	every            time.Duration
	loc              *time.Location
}

type fieldBounds struct {
	min, max uint
	names    map[string]uint
}

var (
	minuteBounds = fieldBounds{0, 59, nil}
	hourBounds   = fieldBounds{0, 23, nil}
	domBounds    = fieldBounds{1, 31, nil}
	monthBounds  = fieldBounds{1, 12, map[string]uint{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}}
	dowBounds = fieldBounds{0, 6, map[string]uint{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}}
)

var descriptors = map[string]string{
	"@yearly":   "0 0 1 1 *",
	"@annually": "0 0 1 1 *",
	"@monthly":  "0 0 1 * *",
	"@weekly":   "0 0 * * 0",
	"@daily":    "0 0 * * *",
	"@midnight": "0 0 * * *",
	"@hourly":   "0 * * * *",
}

// ParseSchedule parses a cron schedule as Kubernetes' CronJob controller does: five fields
// with numbers, names (jan, mon...), "*", "?", ranges ("1-5"), steps ("*/15", "0-30/5",
// "10/5") and lists ("1,15"); a descriptor (@yearly, @annually, @monthly, @weekly, @daily,
// @midnight, @hourly); or "@every <duration>". A leading "TZ=<zone> " or "CRON_TZ=<zone> "
// sets the time zone; otherwise schedules run in UTC. Error messages are the ones
// `kubectl` shows for an invalid spec.schedule.
func ParseSchedule(spec string) (*Schedule, error) {
	if len(spec) == 0 {
		return nil, fmt.Errorf("empty spec string")
	}
	loc := time.UTC
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		eq := strings.Index(spec, "=")
		end := strings.Index(spec, " ")
		if end < 0 {
			end = len(spec)
		}
		zone := spec[eq+1 : end]
		l, err := time.LoadLocation(zone)
		if err != nil {
			return nil, fmt.Errorf("provided bad location %s: %v", zone, err)
		}
		loc = l
		spec = strings.TrimSpace(spec[end:])
	}
	if strings.HasPrefix(spec, "@") {
		const every = "@every "
		if strings.HasPrefix(spec, every) {
			d, err := time.ParseDuration(spec[len(every):])
			if err != nil {
				return nil, fmt.Errorf("failed to parse duration %s: %s", spec, err)
			}
			if d < time.Second {
				d = time.Second
			}
			return &Schedule{every: d - time.Duration(d.Nanoseconds())%time.Second, loc: loc}, nil
		}
		std, ok := descriptors[spec]
		if !ok {
			return nil, fmt.Errorf("unrecognized descriptor: %s", spec)
		}
		spec = std
	}
	fields := strings.Fields(spec)
	if len(fields) != 5 {
		return nil, fmt.Errorf("expected exactly 5 fields, found %d: %s", len(fields), fields)
	}
	s := &Schedule{loc: loc}
	var err error
	parse := func(f string, b fieldBounds, star *bool) uint64 {
		if err != nil {
			return 0
		}
		var bits uint64
		var isStar bool
		bits, isStar, err = parseField(f, b)
		if star != nil {
			*star = isStar
		}
		return bits
	}
	s.minute = parse(fields[0], minuteBounds, nil)
	s.hour = parse(fields[1], hourBounds, nil)
	s.dom = parse(fields[2], domBounds, &s.domStar)
	s.month = parse(fields[3], monthBounds, nil)
	s.dow = parse(fields[4], dowBounds, &s.dowStar)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// parseField reads a comma-separated list of ranges; star reports whether any of them was
// an unstepped "*" or "?".
func parseField(f string, b fieldBounds) (bits uint64, star bool, err error) {
	for _, expr := range strings.FieldsFunc(f, func(r rune) bool { return r == ',' }) {
		rb, rs, err := parseRange(expr, b)
		if err != nil {
			return 0, false, err
		}
		bits |= rb
		star = star || rs
	}
	return bits, star, nil
}

// parseRange reads one of: "*", "?", a number or name, "a-b", each optionally followed by
// "/step". "a/step" means "a-max/step".
func parseRange(expr string, b fieldBounds) (uint64, bool, error) {
	rangeAndStep := strings.Split(expr, "/")
	lowHigh := strings.Split(rangeAndStep[0], "-")
	var start, end uint
	star := false
	if lowHigh[0] == "*" || lowHigh[0] == "?" {
		start, end, star = b.min, b.max, true
	} else {
		var err error
		if start, err = parseValue(lowHigh[0], b.names); err != nil {
			return 0, false, err
		}
		switch len(lowHigh) {
		case 1:
			end = start
		case 2:
			if end, err = parseValue(lowHigh[1], b.names); err != nil {
				return 0, false, err
			}
		default:
			return 0, false, fmt.Errorf("too many hyphens: %s", expr)
		}
	}
	step := uint(1)
	switch len(rangeAndStep) {
	case 1:
	case 2:
		var err error
		if step, err = parseNumber(rangeAndStep[1]); err != nil {
			return 0, false, err
		}
		if len(lowHigh) == 1 {
			end = b.max
		}
		if step > 1 {
			star = false
		}
	default:
		return 0, false, fmt.Errorf("too many slashes: %s", expr)
	}
	switch {
	case start < b.min:
		return 0, false, fmt.Errorf("beginning of range (%d) below minimum (%d): %s", start, b.min, expr)
	case end > b.max:
		return 0, false, fmt.Errorf("end of range (%d) above maximum (%d): %s", end, b.max, expr)
	case start > end:
		return 0, false, fmt.Errorf("beginning of range (%d) beyond end of range (%d): %s", start, end, expr)
	case step == 0:
		return 0, false, fmt.Errorf("step of range should be a positive number: %s", expr)
	}
	var bits uint64
	for i := start; i <= end; i += step {
		bits |= 1 << i
	}
	return bits, star, nil
}

func parseValue(s string, names map[string]uint) (uint, error) {
	if n, ok := names[strings.ToLower(s)]; ok {
		return n, nil
	}
	return parseNumber(s)
}

func parseNumber(s string) (uint, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("failed to parse int from %s: %s", s, err)
	}
	if n < 0 {
		return 0, fmt.Errorf("negative number (%d) not allowed: %s", n, s)
	}
	return uint(n), nil
}

// Next returns the first time after t that the schedule fires, or the zero time if it never
// does within five years (for example "0 0 30 2 *").
func (s *Schedule) Next(t time.Time) time.Time {
	if s.every > 0 {
		return t.Add(s.every - time.Duration(t.Nanosecond())).Truncate(time.Second)
	}
	origLoc := t.Location()
	t = t.In(s.loc).Truncate(time.Minute).Add(time.Minute)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case s.month&(1<<uint(t.Month())) == 0:
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, s.loc)
		case !s.dayMatches(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, s.loc)
		case s.hour&(1<<uint(t.Hour())) == 0:
			t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour()+1, 0, 0, 0, s.loc)
		case s.minute&(1<<uint(t.Minute())) == 0:
			t = t.Add(time.Minute)
		default:
			return t.In(origLoc)
		}
	}
	return time.Time{}
}

func (s *Schedule) dayMatches(t time.Time) bool {
	domMatch := s.dom&(1<<uint(t.Day())) != 0
	dowMatch := s.dow&(1<<uint(t.Weekday())) != 0
	if s.domStar || s.dowStar {
		return domMatch && dowMatch
	}
	return domMatch || dowMatch
}
