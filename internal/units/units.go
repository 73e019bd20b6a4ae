package units

import (
	"fmt"
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
