// Command gguf writes a GGUF v3 file the stock Ollama accepts with
// `ollama create`: the metadata keys it reads and one F32 tensor of
// pseudo-random bytes (incompressible, like real weights). bench/run.sh
// makes its model from it.
//
//	go run ./bench/gguf -size 200M -o bench/work/bench.gguf
package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

func main() {
	size := flag.String("size", "200M", "tensor bytes (K/M/G)")
	out := flag.String("o", "bench.gguf", "output file")
	flag.Parse()
	n, err := parseSize(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gguf:", err)
		os.Exit(2)
	}
	if err := write(*out, n); err != nil {
		fmt.Fprintln(os.Stderr, "gguf:", err)
		os.Exit(1)
	}
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("size %q: want a positive number of bytes, K, M or G", s)
	}
	return n * mult / 4 * 4, nil
}

func write(path string, n int64) error {
	var b bytes.Buffer
	le := binary.LittleEndian
	str := func(s string) { binary.Write(&b, le, uint64(len(s))); b.WriteString(s) }
	b.WriteString("GGUF")
	binary.Write(&b, le, uint32(3))
	binary.Write(&b, le, uint64(1)) // tensors
	binary.Write(&b, le, uint64(4)) // metadata pairs
	str("general.architecture")
	binary.Write(&b, le, uint32(8))
	str("llama")
	str("general.name")
	binary.Write(&b, le, uint32(8))
	str("omd-bench")
	str("llama.context_length")
	binary.Write(&b, le, uint32(4))
	binary.Write(&b, le, uint32(2048))
	str("general.file_type")
	binary.Write(&b, le, uint32(4))
	binary.Write(&b, le, uint32(0))
	// A "v." tensor: the stock build (no llama.cpp) then does not ask
	// llama-quantize to check the file.
	str("v.bench")
	binary.Write(&b, le, uint32(1))
	binary.Write(&b, le, uint64(n/4))
	binary.Write(&b, le, uint32(0)) // F32
	binary.Write(&b, le, uint64(0))
	for b.Len()%32 != 0 {
		b.WriteByte(0)
	}
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.Write(b.Bytes())
	rng := rand.NewChaCha8([32]byte{'o', 'm', 'd'})
	buf := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(buf)) {
		rng.Read(buf)
		if _, err := w.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}
