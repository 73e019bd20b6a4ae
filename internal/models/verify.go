package models

import (
	"context"
	"fmt"
	"io"
)

// verifyOne checks one zip or folder and prints the outcome.
func VerifyAndReport(ctx context.Context, src string, out io.Writer) bool {
	l, err := OpenLayout(src)
	if err != nil {
		fmt.Fprintf(out, "%s: FAILED: %v\n", src, err)
		return false
	}
	problems := l.Verify(ctx, nil)
	for _, n := range l.Notes {
		fmt.Fprintf(out, "%s: note: %s\n", src, n)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintf(out, "%s: problem: %s\n", src, p)
		}
		fmt.Fprintf(out, "%s: FAILED: %d problem(s)\n", src, len(problems))
		return false
	}
	var total int64
	blobs := l.referencedBlobs()
	for _, b := range blobs {
		total += b.Size
	}
	for _, m := range l.Manifests {
		fmt.Fprintf(out, "%s: model %s (%s)\n", src, m.Ref(), m.Digest)
	}
	fmt.Fprintf(out, "%s: OK: %d model(s), %d blob(s), %s verified\n", src, len(l.Manifests), len(blobs), ModelSizeText(total))
	return true
}
