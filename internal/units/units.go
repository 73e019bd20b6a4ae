package units

import (
	"fmt"
	"time"
)

// Decimal is a size for a person, in decimal units as df -H and file
// managers show a disk's space: "4.7 GB".
func Decimal(n int64) string { return unitBytes(n, 1000, "kMGTPE", "B") }

// Binary formats a byte count with binary units, as curl and aria2 do.
func Binary(n int64) string { return unitBytes(n, 1024, "KMGTPE", "iB") }

// unitBytes formats n in steps of unit with the given prefixes: binary
// (humanBytes) for transfers, decimal (sizeText) for disk space.
func unitBytes(n, unit int64, prefixes, suffix string) string {
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := unit, 0
	for m := n / unit; m >= unit && exp < len(prefixes)-1; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %c%s", float64(n)/float64(div), prefixes[exp], suffix)
}

// Duration says a span of time the way a person reads it: "20 s",
// "3 min 5 s", "2 h 10 min" (rounded to the second; below a second, "0 s").
func Duration(d time.Duration) string {
	d = max(d.Round(time.Second), 0)
	h, m, s := int64(d/time.Hour), int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
	switch {
	case h > 0 && m > 0:
		return fmt.Sprintf("%d h %d min", h, m)
	case h > 0:
		return fmt.Sprintf("%d h", h)
	case m > 0 && s > 0:
		return fmt.Sprintf("%d min %d s", m, s)
	case m > 0:
		return fmt.Sprintf("%d min", m)
	}
	return fmt.Sprintf("%d s", s)
}
