// Package units formats byte counts for people: Binary (KiB, MiB) for
// transfers and progress, Decimal (kB, MB) for disk space, as the tools a
// person compares with (curl, df) print them.
package units
