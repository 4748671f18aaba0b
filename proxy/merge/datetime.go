package merge

import (
	"fmt"
	"strconv"
	"strings"
)

// Text forms of dates and times, as Postgres writes them with DateStyle ISO (the default)
// and IntervalStyle postgres (the default). Other styles are reported as errors: the merge
// never guesses an order.

const (
	usecPerSec = int64(1_000_000)
	usecPerDay = 86_400 * usecPerSec
)

// daysFromCivil returns the days from 2000-01-01 to y-m-d in the proleptic Gregorian
// calendar (y astronomical: 1 BC is 0), as Postgres's date2j does relative to 2000.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468 - 10957 // 10957: 1970-01-01 to 2000-01-01
}

// digits reads an unsigned decimal number of at least min digits at s[i:].
func digits(s string, i, min int) (int64, int, bool) {
	j := i
	var v int64
	for j < len(s) && s[j] >= '0' && s[j] <= '9' && j-i < 18 {
		v = v*10 + int64(s[j]-'0')
		j++
	}
	return v, j, j-i >= min
}

// infinityClass returns -1 for "-infinity", 1 for "infinity".
func infinityClass(s string) (int8, bool) {
	switch s {
	case "infinity":
		return 1, true
	case "-infinity":
		return -1, true
	}
	return 0, false
}

// parseDatePart reads "YYYY-MM-DD" at the start of s and returns its fields and the rest.
func parseDatePart(s string) (y, m, d int64, rest string, ok bool) {
	y, i, ok1 := digits(s, 0, 4)
	if !ok1 || i >= len(s) || s[i] != '-' {
		return 0, 0, 0, "", false
	}
	m, j, ok2 := digits(s, i+1, 2)
	if !ok2 || j >= len(s) || s[j] != '-' {
		return 0, 0, 0, "", false
	}
	d, k, ok3 := digits(s, j+1, 2)
	if !ok3 {
		return 0, 0, 0, "", false
	}
	return y, m, d, s[k:], true
}

// stripBC removes a trailing " BC" and returns whether it was there.
func stripBC(s string) (string, bool) {
	if t, ok := strings.CutSuffix(s, " BC"); ok {
		return t, true
	}
	return s, false
}

func astronomical(y int64, bc bool) int64 {
	if bc {
		return 1 - y
	}
	return y
}

// parseDateText returns a date's days since 2000-01-01, or its infinity class.
func parseDateText(b []byte) (int64, int8, error) {
	s := string(b)
	if c, ok := infinityClass(s); ok {
		return 0, c, nil
	}
	s, bc := stripBC(s)
	y, m, d, rest, ok := parseDatePart(s)
	if !ok || rest != "" {
		return 0, 0, fmt.Errorf("date %q is not in ISO DateStyle", b)
	}
	return daysFromCivil(astronomical(y, bc), m, d), 0, nil
}

// parseClock reads "HH:MM:SS[.ffffff]" at the start of s and returns microseconds.
func parseClock(s string) (int64, string, bool) {
	h, i, ok := digits(s, 0, 2)
	if !ok || i >= len(s) || s[i] != ':' {
		return 0, "", false
	}
	mi, j, ok := digits(s, i+1, 2)
	if !ok || j >= len(s) || s[j] != ':' {
		return 0, "", false
	}
	sec, k, ok := digits(s, j+1, 2)
	if !ok {
		return 0, "", false
	}
	us := ((h*60+mi)*60 + sec) * usecPerSec
	if k < len(s) && s[k] == '.' {
		frac, e, ok := digits(s, k+1, 1)
		if !ok || e-k-1 > 6 {
			return 0, "", false
		}
		for n := e - k - 1; n < 6; n++ {
			frac *= 10
		}
		us += frac
		k = e
	}
	return us, s[k:], true
}

// parseTimestampText returns a timestamp's (withTZ: timestamptz's, in UTC) microseconds
// since 2000-01-01 00:00, or its infinity class.
func parseTimestampText(b []byte, withTZ bool) (int64, int8, error) {
	s := string(b)
	if c, ok := infinityClass(s); ok {
		return 0, c, nil
	}
	bad := func() (int64, int8, error) {
		return 0, 0, fmt.Errorf("timestamp %q is not in ISO DateStyle", b)
	}
	s, bc := stripBC(s)
	y, m, d, rest, ok := parseDatePart(s)
	if !ok || len(rest) < 1 || rest[0] != ' ' {
		return bad()
	}
	clock, rest, ok := parseClock(rest[1:])
	if !ok {
		return bad()
	}
	us := daysFromCivil(astronomical(y, bc), m, d)*usecPerDay + clock
	if withTZ {
		off, r, ok := parseOffset(rest)
		if !ok {
			return bad()
		}
		us -= off
		rest = r
	}
	if rest != "" {
		return bad()
	}
	return us, 0, nil
}

// parseOffset reads a UTC offset "+HH[:MM[:SS]]" and returns it in microseconds.
func parseOffset(s string) (int64, string, bool) {
	if s == "" || (s[0] != '+' && s[0] != '-') {
		return 0, "", false
	}
	sign := int64(1)
	if s[0] == '-' {
		sign = -1
	}
	h, i, ok := digits(s, 1, 2)
	if !ok {
		return 0, "", false
	}
	secs := h * 3600
	for part := 0; part < 2 && i < len(s) && s[i] == ':'; part++ {
		v, j, ok := digits(s, i+1, 2)
		if !ok {
			return 0, "", false
		}
		if part == 0 {
			secs += v * 60
		} else {
			secs += v
		}
		i = j
	}
	return sign * secs * usecPerSec, s[i:], true
}

// parseTimeText returns a time of day in microseconds.
func parseTimeText(b []byte) (int64, error) {
	us, rest, ok := parseClock(string(b))
	if !ok || rest != "" {
		return 0, fmt.Errorf("time %q is not in ISO format", b)
	}
	return us, nil
}

// parseIntervalText reads IntervalStyle postgres output ("1 year 2 mons -3 days +04:05:06.5",
// "-00:00:01", "00:00:00") into months, days and microseconds.
func parseIntervalText(b []byte) (months, days, us int64, err error) {
	fields := strings.Fields(string(b))
	bad := fmt.Errorf("interval %q is not in IntervalStyle postgres", b)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if strings.Contains(f, ":") {
			neg := false
			switch f[0] {
			case '-':
				neg = true
				f = f[1:]
			case '+':
				f = f[1:]
			}
			// Hours may have more than two digits.
			h, j, ok := digits(f, 0, 1)
			if !ok || j >= len(f) || f[j] != ':' {
				return 0, 0, 0, bad
			}
			clock, rest, ok := parseClock("00" + f[j:])
			if !ok || rest != "" {
				return 0, 0, 0, bad
			}
			v := h*3600*usecPerSec + clock
			if neg {
				v = -v
			}
			us += v
			continue
		}
		if i+1 >= len(fields) {
			return 0, 0, 0, bad
		}
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, 0, 0, bad
		}
		i++
		switch fields[i] {
		case "year", "years":
			months += 12 * n
		case "mon", "mons":
			months += n
		case "day", "days":
			days += n
		default:
			return 0, 0, 0, bad
		}
	}
	return months, days, us, nil
}

// intervalSpan normalizes an interval as interval_cmp does (a month is 30 days, a day 24
// hours) into whole days and microseconds within the day, for ordering and equality.
func intervalSpan(months, days, us int64) (int64, int64) {
	total := months*30 + days
	q := us / usecPerDay
	r := us % usecPerDay
	if r < 0 {
		r += usecPerDay
		q--
	}
	return total + q, r
}
