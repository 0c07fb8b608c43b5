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
func loadDir(fs FS, dir string, interval int64, strict bool) (segs []*segment, err error) {
	ents, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	type found struct {
		name string
		base int64
		prev uint64
	}
	var names []found
	for _, n := range ents {
		if strings.HasSuffix(n, segSuffix+tmpSuffix) {
			if err := fs.Remove(filepath.Join(dir, n)); err != nil {
				return nil, fmt.Errorf("segment: remove leftover: %w", err)
			}
			continue
		}
		base, prev, ok := parseSegName(n)
		if !ok {
			continue
		}
		if st, err := fs.Stat(filepath.Join(dir, n)); err != nil {
			return nil, fmt.Errorf("segment: %w", err)
		} else if st.Mode().IsRegular() {
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
		s, err := loadSegment(fs, dir, n.name, n.base, n.prev, interval, last, strict || last, !strict && last)
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
func loadSegment(fs FS, dir, name string, base int64, prev uint64, interval int64, active, verify, repair bool) (*segment, error) {
	path := filepath.Join(dir, name)
	open := fs.Open
	if active {
		open = fs.OpenForWrite
	}
	f, err := open(path)
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

func scanSegment(f File, name string, base int64, prev uint64, interval int64, verify, repair bool) (*segment, error) {
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
	s.behind = s.size // written before this Open: left to the kernel and the next Sync
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
func recoverRestore(fs FS, dir string) error {
	parent, prefix, old := restoreNames(dir)
	if _, err := fs.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if _, err := fs.Stat(old); err == nil {
			if err := fs.Rename(old, dir); err != nil {
				return fmt.Errorf("segment: roll back an interrupted restore: %w", err)
			}
			if err := SyncDir(fs, parent); err != nil {
				return fmt.Errorf("segment: %w", err)
			}
		}
	}
	if err := fs.RemoveAll(old); err != nil {
		return fmt.Errorf("segment: %w", err)
	}
	ents, err := fs.List(parent)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // mkdirAll creates it
		}
		return fmt.Errorf("segment: %w", err)
	}
	for _, n := range ents {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		if st, err := fs.Stat(filepath.Join(parent, n)); err == nil && st.IsDir() {
			if err := fs.RemoveAll(filepath.Join(parent, n)); err != nil {
				return fmt.Errorf("segment: %w", err)
			}
		}
	}
	return nil
}
