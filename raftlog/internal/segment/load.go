package segment

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// loadDir opens the segments of dir and rebuilds their in-memory state.
//
// With strict unset (Open) sealed segments are checked up to their framing
// and the last one is fully validated and truncated at its first bad frame.
// With strict set (Restore) every frame of every segment is fully validated
// and any flaw is an error. Leftover temporary files are removed either way.
// On error no file stays open.
func loadDir(dir string, interval int64, strict bool) (segs []*segment, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	type found struct {
		name string
		base int64
		prev uint64
	}
	var names []found
	for _, e := range ents {
		n := e.Name()
		if strings.HasSuffix(n, segSuffix+tmpSuffix) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return nil, fmt.Errorf("segment: remove leftover: %w", err)
			}
			continue
		}
		if base, prev, ok := parseSegName(n); ok && e.Type().IsRegular() {
			names = append(names, found{n, base, prev})
		}
	}
	// Names sort by (base, prevIndex); both only grow along the log.
	slices.SortFunc(names, func(a, b found) int { return strings.Compare(a.name, b.name) })

	defer func() {
		if err != nil {
			for _, s := range segs {
				s.f.Close()
			}
			segs = nil
		}
	}()
	for i, n := range names {
		last := i == len(names)-1
		s, err := loadSegment(dir, n.name, n.base, n.prev, interval, last, strict || last, !strict && last)
		if err != nil {
			return segs, err
		}
		if i > 0 {
			p := segs[i-1]
			if s.base != p.next || s.prevIndex != p.lastIndex {
				s.f.Close()
				return segs, fmt.Errorf("%w: segment %s does not continue %s (expected offset %d, index %d): a segment is missing",
					ErrCorrupt, s.name, p.name, p.next, p.lastIndex)
			}
		}
		segs = append(segs, s)
	}
	return segs, nil
}

// loadSegment opens one segment file (for writing too when active) and
// scans its frames. verify checks payload CRCs; repair truncates (and
// fsyncs) the file at the first bad frame instead of failing.
func loadSegment(dir, name string, base int64, prev uint64, interval int64, active, verify, repair bool) (*segment, error) {
	path := filepath.Join(dir, name)
	flag := os.O_RDONLY
	if active {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	s, err := scanSegment(f, name, base, prev, interval, verify, repair)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func scanSegment(f *os.File, name string, base int64, prev uint64, interval int64, verify, repair bool) (*segment, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	var hb [segHeaderSize]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("segment: read %s: %w", name, err)
	}
	h, err := decodeSegHeader(hb[:min(st.Size(), segHeaderSize)])
	if err != nil {
		return nil, fmt.Errorf("segment %s: %w", name, err)
	}
	if h.base != base || h.prevIndex != prev {
		return nil, fmt.Errorf("%w: segment %s has a header for offset %d, index %d", ErrCorrupt, name, h.base, h.prevIndex)
	}
	s := newSegment(name, h, f)
	sc := scanner{r: f, pos: segHeaderSize, end: st.Size(), chunk: headerChunk}
	if verify {
		sc.chunk = dataChunk
	}
	for {
		fh, err := sc.next()
		if err == io.EOF {
			break
		}
		if err == nil {
			if cerr := checkNext(&fh.b, s.lastIndex, s.next); cerr != nil {
				err = fmt.Errorf("%w: frame at %d: %v", ErrCorrupt, sc.pos, cerr)
			}
		}
		if err == nil && verify {
			_, err = sc.frame()
		}
		if err != nil {
			if !repair || !errors.Is(err, ErrCorrupt) {
				return nil, fmt.Errorf("segment %s: %w", name, err)
			}
			if err := f.Truncate(sc.pos); err != nil {
				return nil, fmt.Errorf("segment: truncate %s: %w", name, err)
			}
			if err := f.Sync(); err != nil {
				return nil, fmt.Errorf("segment: sync %s: %w", name, err)
			}
			break
		}
		s.add(&fh.b, sc.pos, fh.size(), interval)
		sc.advance()
	}
	return s, nil
}

// Names of a Restore's scratch directories next to dir. A restore writes
// into restorePrefix+random, then renames dir to oldName and the scratch
// directory to dir.
func restoreNames(dir string) (parent, restorePrefix, oldName string) {
	parent, base := filepath.Split(dir)
	return filepath.Clean(parent), "." + base + ".restore-", filepath.Join(parent, "."+base+".old")
}

// recoverRestore repairs what a crash during Restore's swap left: when dir is
// missing but the old directory is there, the swap was half done and is
// rolled back (the Restore never returned, so the old log is the right one).
// Scratch directories of unfinished restores are removed.
func recoverRestore(dir string) error {
	parent, prefix, old := restoreNames(dir)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(old); err == nil {
			if err := os.Rename(old, dir); err != nil {
				return fmt.Errorf("segment: roll back an interrupted restore: %w", err)
			}
			if err := syncDir(parent); err != nil {
				return fmt.Errorf("segment: %w", err)
			}
		}
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	ents, err := os.ReadDir(parent)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // MkdirAll creates it
		}
		return fmt.Errorf("segment: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) && e.IsDir() {
			if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
				return fmt.Errorf("segment: %w", err)
			}
		}
	}
	return nil
}
