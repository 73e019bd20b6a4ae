package models

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"ollama-model-downloader/internal/disk"
	"os"
	"sync/atomic"
	"time"
)

// The zip format's fixed sizes (APPNOTE.TXT 4.3) and the values that mean
// "look in the zip64 records".
const (
	zipLocalHeaderLen   = 30
	zipCentralHeaderLen = 46
	zipEndLen           = 22
	zip64EndLen         = 56
	zip64LocatorLen     = 20
	zipExtTimeLen       = 9 // extended timestamp extra field, mtime only (what Info-ZIP writes)
	zipMax32            = 0xFFFFFFFF
	zipMax16            = 0xFFFF

	zipVersion20   = 20 // stored files and folders
	zipVersion45   = 45 // zip64
	zipCreatorUnix = 3  // "made by" Unix: the external attributes carry the mode
)

// zipLayout is a zip of Store entries whose every byte position is known
// before any blob is fetched: the sizes come from the manifest, the names
// from Ollama's layout, the time is fixed. A pull downloads each blob
// straight into its entry's data (zipSpace, regionFile) and writes the
// headers around them once every CRC-32 is known: the zip costs the disk
// one model size, with no staging copy and no second pass over the data.
type zipLayout struct {
	Entries  []zipSlot
	Modified time.Time // every entry's time, kept in the pull's state so a resumed layout is identical
	CDOffset int64     // where the central directory starts
	Size     int64     // the whole zip
}

// zipSlot is one entry of a zipLayout.
type zipSlot struct {
	Name   string // slash-separated; a folder ends in "/"
	Size   int64
	Header int64  // offset of the local file header
	Data   int64  // offset of the first data byte
	CRC    uint32 // set once the data is known
}

func (s zipSlot) dir() bool { return len(s.Name) > 0 && s.Name[len(s.Name)-1] == '/' }

// zip64 reports whether the entry's sizes do not fit the 32-bit fields.
func (s zipSlot) zip64() bool { return s.Size >= zipMax32 }

// planZip lays entries out one after the other, each a local header and
// its data, then the central directory.
func planZip(entries []zipSlot, modified time.Time) (*zipLayout, error) {
	l := &zipLayout{Modified: modified.Truncate(time.Second)}
	var off int64
	for _, e := range entries {
		if err := checkZipName(e.Name); err != nil {
			return nil, err
		}
		if len(e.Name) > zipMax16 {
			return nil, fmt.Errorf("zip entry name of %d bytes is too long", len(e.Name))
		}
		if e.dir() && e.Size != 0 || e.Size < 0 {
			return nil, fmt.Errorf("zip entry %q: invalid size %d", e.Name, e.Size)
		}
		e.Header = off
		e.Data = off + zipLocalHeaderLen + int64(len(e.Name)) + int64(e.localExtraLen())
		off = e.Data + e.Size
		l.Entries = append(l.Entries, e)
	}
	l.CDOffset = off
	l.Size = off + int64(len(l.tail()))
	return l, nil
}

func (s zipSlot) localExtraLen() int {
	n := zipExtTimeLen
	if s.zip64() {
		n += 4 + 16 // both sizes: APPNOTE 4.5.3 wants both in a local header
	}
	return n
}

// Slot returns the entry named name.
func (l *zipLayout) Slot(name string) (*zipSlot, bool) {
	for i := range l.Entries {
		if l.Entries[i].Name == name {
			return &l.Entries[i], true
		}
	}
	return nil, false
}

// dosTime is the MS-DOS date and time of the layout (local time, as
// Info-ZIP reads it; the extended timestamp carries UTC).
func (l *zipLayout) dosTime() (date, clock uint16) {
	t := l.Modified
	if t.Year() < 1980 {
		t = time.Date(1980, 1, 1, 0, 0, 0, 0, time.Local)
	}
	date = uint16(t.Day() + int(t.Month())<<5 + (t.Year()-1980)<<9)
	clock = uint16(t.Second()/2 + t.Minute()<<5 + t.Hour()<<11)
	return date, clock
}

func (s zipSlot) mode() fs.FileMode {
	if s.dir() {
		return fs.ModeDir | 0o755
	}
	return 0o644
}

// externalAttrs is the Unix mode in the high half and, for a folder, the
// MS-DOS directory bit, as archive/zip's SetMode writes them.
func (s zipSlot) externalAttrs() uint32 {
	attrs := uint32(0o100644) << 16
	if s.dir() {
		attrs = uint32(0o040755)<<16 | 0x10
	}
	return attrs
}

func (s zipSlot) readerVersion() uint16 {
	if s.zip64() || s.Header >= zipMax32 {
		return zipVersion45
	}
	return zipVersion20
}

// LocalHeader is the entry's local file header with its CRC as known now.
func (l *zipLayout) LocalHeader(s zipSlot) []byte {
	b := make([]byte, 0, zipLocalHeaderLen+len(s.Name)+s.localExtraLen())
	date, clock := l.dosTime()
	size32 := uint32(s.Size)
	if s.zip64() {
		size32 = zipMax32
	}
	b = binary.LittleEndian.AppendUint32(b, 0x04034b50)
	b = binary.LittleEndian.AppendUint16(b, s.readerVersion())
	b = binary.LittleEndian.AppendUint16(b, 0) // flags: ASCII names, no data descriptor
	b = binary.LittleEndian.AppendUint16(b, 0) // method: Store
	b = binary.LittleEndian.AppendUint16(b, clock)
	b = binary.LittleEndian.AppendUint16(b, date)
	b = binary.LittleEndian.AppendUint32(b, s.CRC)
	b = binary.LittleEndian.AppendUint32(b, size32) // compressed = uncompressed
	b = binary.LittleEndian.AppendUint32(b, size32)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s.Name)))
	b = binary.LittleEndian.AppendUint16(b, uint16(s.localExtraLen()))
	b = append(b, s.Name...)
	b = l.appendExtTime(b)
	if s.zip64() {
		b = binary.LittleEndian.AppendUint16(b, 0x0001)
		b = binary.LittleEndian.AppendUint16(b, 16)
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Size))
		b = binary.LittleEndian.AppendUint64(b, uint64(s.Size))
	}
	return b
}

func (l *zipLayout) appendExtTime(b []byte) []byte {
	b = binary.LittleEndian.AppendUint16(b, 0x5455)
	b = binary.LittleEndian.AppendUint16(b, 5)
	b = append(b, 1) // flags: modification time present
	return binary.LittleEndian.AppendUint32(b, uint32(l.Modified.Unix()))
}

// tail is the central directory and the end records, with the CRCs as
// known now; its length never depends on them.
func (l *zipLayout) tail() []byte {
	var b []byte
	date, clock := l.dosTime()
	for _, s := range l.Entries {
		var z64 []byte
		size32, off32 := uint32(s.Size), uint32(s.Header)
		if s.zip64() {
			size32 = zipMax32
			z64 = binary.LittleEndian.AppendUint64(z64, uint64(s.Size))
			z64 = binary.LittleEndian.AppendUint64(z64, uint64(s.Size))
		}
		if s.Header >= zipMax32 {
			off32 = zipMax32
			z64 = binary.LittleEndian.AppendUint64(z64, uint64(s.Header))
		}
		extraLen := zipExtTimeLen
		if z64 != nil {
			extraLen += 4 + len(z64)
		}
		b = binary.LittleEndian.AppendUint32(b, 0x02014b50)
		b = binary.LittleEndian.AppendUint16(b, zipCreatorUnix<<8|s.readerVersion())
		b = binary.LittleEndian.AppendUint16(b, s.readerVersion())
		b = binary.LittleEndian.AppendUint16(b, 0)
		b = binary.LittleEndian.AppendUint16(b, 0)
		b = binary.LittleEndian.AppendUint16(b, clock)
		b = binary.LittleEndian.AppendUint16(b, date)
		b = binary.LittleEndian.AppendUint32(b, s.CRC)
		b = binary.LittleEndian.AppendUint32(b, size32)
		b = binary.LittleEndian.AppendUint32(b, size32)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(s.Name)))
		b = binary.LittleEndian.AppendUint16(b, uint16(extraLen))
		b = binary.LittleEndian.AppendUint16(b, 0) // comment
		b = binary.LittleEndian.AppendUint16(b, 0) // disk number
		b = binary.LittleEndian.AppendUint16(b, 0) // internal attributes
		b = binary.LittleEndian.AppendUint32(b, s.externalAttrs())
		b = binary.LittleEndian.AppendUint32(b, off32)
		b = append(b, s.Name...)
		b = l.appendExtTime(b)
		if z64 != nil {
			b = binary.LittleEndian.AppendUint16(b, 0x0001)
			b = binary.LittleEndian.AppendUint16(b, uint16(len(z64)))
			b = append(b, z64...)
		}
	}
	cdSize := int64(len(b))
	records := uint64(len(l.Entries))
	if records >= zipMax16 || cdSize >= zipMax32 || l.CDOffset >= zipMax32 {
		end64 := l.CDOffset + cdSize
		b = binary.LittleEndian.AppendUint32(b, 0x06064b50)
		b = binary.LittleEndian.AppendUint64(b, zip64EndLen-12)
		b = binary.LittleEndian.AppendUint16(b, zipCreatorUnix<<8|zipVersion45)
		b = binary.LittleEndian.AppendUint16(b, zipVersion45)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, records)
		b = binary.LittleEndian.AppendUint64(b, records)
		b = binary.LittleEndian.AppendUint64(b, uint64(cdSize))
		b = binary.LittleEndian.AppendUint64(b, uint64(l.CDOffset))
		b = binary.LittleEndian.AppendUint32(b, 0x07064b50)
		b = binary.LittleEndian.AppendUint32(b, 0)
		b = binary.LittleEndian.AppendUint64(b, uint64(end64))
		b = binary.LittleEndian.AppendUint32(b, 1)
	}
	b = binary.LittleEndian.AppendUint32(b, 0x06054b50)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint16(b, uint16(min(records, zipMax16)))
	b = binary.LittleEndian.AppendUint16(b, uint16(min(records, zipMax16)))
	b = binary.LittleEndian.AppendUint32(b, uint32(min(cdSize, zipMax32)))
	b = binary.LittleEndian.AppendUint32(b, uint32(min(l.CDOffset, zipMax32)))
	return binary.LittleEndian.AppendUint16(b, 0) // comment length
}

// WriteHeaders writes every local header and the central directory into
// w (the data regions are not touched).
func (l *zipLayout) WriteHeaders(w io.WriterAt) error {
	for _, s := range l.Entries {
		if _, err := w.WriteAt(l.LocalHeader(s), s.Header); err != nil {
			return fmt.Errorf("writing the header of %s: %w", s.Name, err)
		}
	}
	if _, err := w.WriteAt(l.tail(), l.CDOffset); err != nil {
		return fmt.Errorf("writing the zip's central directory: %w", err)
	}
	return nil
}

// zipSpace is the zip being written: one temporary file, or (-split) the
// temporary files of its parts, each partSize bytes but the last. Offsets
// are the zip's own: the parts' concatenation is the zip.
type zipSpace struct {
	files    []*os.File
	Paths    []string // temporary files, in order
	partSize int64    // 0: one file
	size     int64
	unkicked atomic.Int64 // bytes written since writeback was last started
}

// writebackEvery is how many written bytes start the disk's writeback
// (startWriteback): the fsync before publishing then has little left.
const writebackEvery = 16 << 20

// openZipSpace opens (creating them when missing) the temporary files
// for a zip of size bytes; fresh truncates what an earlier, different
// plan left in them.
func openZipSpace(paths []string, partSize, size int64, fresh bool) (*zipSpace, error) {
	s := &zipSpace{Paths: paths, partSize: partSize, size: size}
	for i, p := range paths {
		flags := os.O_RDWR | os.O_CREATE
		if fresh {
			flags |= os.O_TRUNC
		}
		f, err := os.OpenFile(p, flags, 0o644)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("opening %s: %w", p, err)
		}
		s.files = append(s.files, f)
		// A part longer than its share would not concatenate to the zip.
		if want := s.partLen(i); !fresh {
			if fi, err := f.Stat(); err == nil && fi.Size() > want {
				if err := f.Truncate(want); err != nil {
					s.Close()
					return nil, fmt.Errorf("trimming %s: %w", p, err)
				}
			}
		}
	}
	return s, nil
}

// partLen is how many bytes part i holds once complete.
func (s *zipSpace) partLen(i int) int64 {
	if s.partSize <= 0 {
		return s.size
	}
	return min(s.partSize, s.size-int64(i)*s.partSize)
}

// piece finds the file holding the zip's byte off and the bytes it holds
// from there.
func (s *zipSpace) piece(off int64) (f *os.File, at, n int64) {
	if s.partSize <= 0 {
		return s.files[0], off, s.size - off
	}
	i := off / s.partSize
	at = off - i*s.partSize
	return s.files[i], at, s.partLen(int(i)) - at
}

func (s *zipSpace) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.size {
		return 0, fmt.Errorf("write of %d bytes at %d is outside the %d-byte zip", len(p), off, s.size)
	}
	done := 0
	for done < len(p) {
		f, at, room := s.piece(off + int64(done))
		n := int(min(int64(len(p)-done), room))
		w, err := f.WriteAt(p[done:done+n], at)
		done += w
		if err != nil {
			return done, err
		}
		if s.unkicked.Add(int64(w)) >= writebackEvery {
			s.unkicked.Store(0)
			disk.StartWriteback(f)
		}
	}
	return done, nil
}

func (s *zipSpace) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	done := 0
	for done < len(p) {
		if off+int64(done) >= s.size {
			return done, io.EOF
		}
		f, at, room := s.piece(off + int64(done))
		n := int(min(int64(len(p)-done), room))
		r, err := f.ReadAt(p[done:done+n], at)
		done += r
		if errors.Is(err, io.EOF) && r == n {
			continue // this part ends here; the next goes on
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// A region not written yet reads as zeros, as in one sparse file.
				clear(p[done : done+n-r])
				done += n - r
				continue
			}
			return done, err
		}
	}
	return done, nil
}

// Sync makes every part durable.
func (s *zipSpace) Sync() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Sync())
	}
	return errors.Join(errs...)
}

// Finish sets every part to its final length (a region never written,
// such as an empty zip's, is a hole until then), syncs and closes.
func (s *zipSpace) Finish() error {
	for i, f := range s.files {
		if err := f.Truncate(s.partLen(i)); err != nil {
			return fmt.Errorf("sizing %s: %w", s.Paths[i], err)
		}
	}
	if err := s.Sync(); err != nil {
		return err
	}
	return s.Close()
}

func (s *zipSpace) Close() error {
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	s.files = nil
	return errors.Join(errs...)
}

// Region is the part of the zip holding one entry's data, as the file the
// download engine writes into (Request.Region).
func (s *zipSpace) Region(slot zipSlot) *regionFile {
	return &regionFile{space: s, off: slot.Data, size: slot.Size, name: slot.Name}
}

// regionFile is bytes [off, off+size) of a zipSpace seen as a file of size
// bytes: what the engine would otherwise write as a .part. It never
// shrinks or grows, and closing it leaves the zip open for the others.
type regionFile struct {
	space *zipSpace
	off   int64
	size  int64
	pos   int64
	name  string
}

func (r *regionFile) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	n, err := r.ReadAt(p[:min(int64(len(p)), r.size-r.pos)], r.pos)
	r.pos += int64(n)
	return n, err
}

func (r *regionFile) Write(p []byte) (int, error) {
	n, err := r.WriteAt(p, r.pos)
	r.pos += int64(n)
	return n, err
}

func (r *regionFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= r.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), r.size-off)
	n, err := r.space.ReadAt(p[:want], r.off+off)
	if err == nil && int64(n) < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

func (r *regionFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > r.size {
		return 0, fmt.Errorf("%s: %d bytes at %d pass the entry's %d bytes", r.name, len(p), off, r.size)
	}
	return r.space.WriteAt(p, r.off+off)
}

func (r *regionFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.pos
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, errors.New("invalid whence")
	}
	if offset < 0 {
		return 0, errors.New("negative position")
	}
	r.pos = offset
	return offset, nil
}

// Truncate accepts any length within the region: bytes past it are not
// trusted anyway (the resume state says how many are good).
func (r *regionFile) Truncate(size int64) error {
	if size < 0 || size > r.size {
		return fmt.Errorf("%s: cannot size a %d-byte zip entry to %d bytes", r.name, r.size, size)
	}
	return nil
}

func (r *regionFile) Sync() error { return r.space.Sync() }

func (r *regionFile) Close() error { return nil }

func (r *regionFile) Stat() (os.FileInfo, error) { return regionInfo{r}, nil }

// regionInfo is a regionFile's os.FileInfo: its size is the entry's.
type regionInfo struct{ r *regionFile }

func (i regionInfo) Name() string { return i.r.name }

func (i regionInfo) Size() int64 { return i.r.size }

func (i regionInfo) Mode() fs.FileMode { return 0o644 }

func (i regionInfo) ModTime() time.Time { return time.Time{} }

func (i regionInfo) IsDir() bool { return false }

func (i regionInfo) Sys() any { return nil }

// blobSum is the hash a blob's bytes go through on their one pass: the
// SHA-256 that verifies it (its Sum) and the CRC-32 its zip entry needs.
type blobSum struct {
	sha hash.Hash
	crc hash.Hash32
}

func newBlobSum() *blobSum { return &blobSum{sha: sha256.New(), crc: crc32.NewIEEE()} }

func (b *blobSum) Write(p []byte) (int, error) {
	b.sha.Write(p)
	b.crc.Write(p)
	return len(p), nil
}

func (b *blobSum) Sum(in []byte) []byte { return b.sha.Sum(in) }

func (b *blobSum) Reset() { b.sha.Reset(); b.crc.Reset() }

func (b *blobSum) Size() int { return b.sha.Size() }

func (b *blobSum) BlockSize() int { return b.sha.BlockSize() }

func (b *blobSum) CRC() uint32 { return b.crc.Sum32() }
