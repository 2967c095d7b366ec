package upkeep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf16"
)

// A reader of just enough of Apple's binary property list ("bplist00") to
// find the string values of a dictionary key, as Discover needs for
// SophosCloudConfig.plist. The layout (CoreFoundation's CFBinaryPList.c):
//
//	"bplist00" | objects ... | offset table | 32-byte trailer
//
// The trailer gives the width of an offset (1-8 bytes), the width of an
// object reference (1-8 bytes), the number of objects and where the offset
// table starts. Each object starts with a marker byte: the high nibble is
// its type (0x5 ASCII string, 0x6 UTF-16BE string, 0xA array, 0xD dict,
// ...), the low nibble its length, or 0xF when an integer object with the
// length follows. A dict of n pairs is n key references then n value
// references.
//
// Everything read is checked against the file's bounds, and the total work
// is capped, so a hostile file is an error, never a panic or a long loop.
// Writing plists and the other object types are not needed and not done.

const (
	plistTrailerLen  = 32
	maxPlistRefsRead = 1 << 20 // dict references followed, in all
	maxPlistString   = 1 << 16 // longer strings are skipped
	maxPlistDecoded  = 1 << 20 // string bytes read, in all
)

type binaryPlist struct {
	data    []byte
	offsets []uint64 // of each object
	refSize int
	budget  int // references left to follow
	decoded int // string bytes read so far, up to maxPlistDecoded
}

// errPlistBudget ends a search that read maxPlistDecoded bytes of strings:
// references can point at one long string as often as they like.
var errPlistBudget = errors.New("too much string data read")

var errPlistTruncated = errors.New("object runs past the end of the file")

func parseBinaryPlist(data []byte) (*binaryPlist, error) {
	if len(data) < 8+plistTrailerLen {
		return nil, errors.New("too short for a binary plist")
	}
	t := data[len(data)-plistTrailerLen:]
	offSize, refSize := int(t[6]), int(t[7])
	numObjects := binary.BigEndian.Uint64(t[8:16])
	tableAt := binary.BigEndian.Uint64(t[24:32])
	end := uint64(len(data) - plistTrailerLen)
	switch {
	case offSize < 1 || offSize > 8 || refSize < 1 || refSize > 8:
		return nil, fmt.Errorf("trailer: offset size %d, reference size %d; want 1 to 8", offSize, refSize)
	case tableAt < 8 || tableAt > end:
		return nil, fmt.Errorf("trailer: offset table at %d, outside the file", tableAt)
	case numObjects == 0 || numObjects > (end-tableAt)/uint64(offSize):
		return nil, fmt.Errorf("trailer: %d objects do not fit the offset table", numObjects)
	}
	p := &binaryPlist{data: data[:tableAt], refSize: refSize, budget: maxPlistRefsRead}
	p.offsets = make([]uint64, numObjects)
	for i := range p.offsets {
		at := tableAt + uint64(i*offSize)
		p.offsets[i] = readUintBE(data[at : at+uint64(offSize)])
		if p.offsets[i] < 8 || p.offsets[i] >= tableAt {
			return nil, fmt.Errorf("object %d at offset %d, outside the object area", i, p.offsets[i])
		}
	}
	return p, nil
}

func readUintBE(b []byte) uint64 {
	var v uint64
	for _, c := range b {
		v = v<<8 | uint64(c)
	}
	return v
}

// header reads the marker of the object at off and its count, and returns
// the type nibble, the count and where the object's content starts.
func (p *binaryPlist) header(off uint64) (typ byte, count uint64, content uint64, err error) {
	if off >= uint64(len(p.data)) {
		return 0, 0, 0, errPlistTruncated
	}
	m := p.data[off]
	typ, count, content = m>>4, uint64(m&0x0F), off+1
	if count == 0x0F && (typ == 0x4 || typ == 0x5 || typ == 0x6 || typ == 0xA || typ == 0xD) {
		if content >= uint64(len(p.data)) || p.data[content]>>4 != 0x1 {
			return 0, 0, 0, fmt.Errorf("object at %d: length is not an integer", off)
		}
		n := uint64(1) << (p.data[content] & 0x0F)
		if n > 8 || content+1+n > uint64(len(p.data)) {
			return 0, 0, 0, fmt.Errorf("object at %d: bad length integer", off)
		}
		count = readUintBE(p.data[content+1 : content+1+n])
		content += 1 + n
	}
	return typ, count, content, nil
}

// strObj locates the string object with index ref: its type (0x5 ASCII,
// 0x6 UTF-16BE, 0 for anything else or a string longer than
// maxPlistString), its length in code units and where its content starts.
func (p *binaryPlist) strObj(ref uint64) (typ byte, n, at uint64, err error) {
	if ref >= uint64(len(p.offsets)) {
		return 0, 0, 0, fmt.Errorf("reference %d to a missing object", ref)
	}
	typ, n, at, err = p.header(p.offsets[ref])
	if err != nil || typ != 0x5 && typ != 0x6 || n > maxPlistString {
		return 0, 0, 0, err
	}
	size := n
	if typ == 0x6 {
		size = 2 * n
	}
	if at+size > uint64(len(p.data)) {
		return 0, 0, 0, errPlistTruncated
	}
	return typ, n, at, nil
}

// isKey reports whether the object with index ref is the ASCII string key,
// comparing in place: a key is looked at for every pair, so it must cost
// no copy and no decoding.
func (p *binaryPlist) isKey(ref uint64, key string) (bool, error) {
	typ, n, at, err := p.strObj(ref)
	if err != nil || typ == 0 || n != uint64(len(key)) {
		return false, err
	}
	for i := range n {
		var c uint16
		switch typ {
		case 0x5:
			c = uint16(p.data[at+i])
		case 0x6:
			c = binary.BigEndian.Uint16(p.data[at+2*i:])
		default:
			return false, nil
		}
		if c != uint16(key[i]) {
			return false, nil
		}
	}
	return true, nil
}

// str returns the string object with index ref, and false when it is not
// a string or longer than maxPlistString. What it reads counts against
// maxPlistDecoded.
func (p *binaryPlist) str(ref uint64) (string, bool, error) {
	typ, n, at, err := p.strObj(ref)
	if err != nil || typ == 0 {
		return "", false, err
	}
	if p.decoded += int(n); p.decoded > maxPlistDecoded {
		return "", false, errPlistBudget
	}
	switch typ {
	case 0x5:
		return string(p.data[at : at+n]), true, nil
	case 0x6:
		units := make([]uint16, n)
		for i := range units {
			units[i] = binary.BigEndian.Uint16(p.data[at+2*uint64(i):])
		}
		return string(utf16.Decode(units)), true, nil
	}
	return "", false, nil
}

// stringsForKey returns the string values of key in every dict of the
// plist, in object order. A malformed object ends the search with what was
// found before it.
func (p *binaryPlist) stringsForKey(key string) []string {
	var out []string
	for _, off := range p.offsets {
		typ, n, at, err := p.header(off)
		if err != nil || typ != 0xD {
			continue
		}
		size := uint64(p.refSize)
		if n > uint64(p.budget) || at+2*n*size > uint64(len(p.data)) {
			return out
		}
		p.budget -= int(n)
		for i := range n {
			ok, err := p.isKey(readUintBE(p.data[at+i*size:at+(i+1)*size]), key)
			if err != nil {
				return out
			}
			if !ok {
				continue
			}
			v, ok, err := p.str(readUintBE(p.data[at+(n+i)*size : at+(n+i+1)*size]))
			if err != nil {
				return out
			}
			if ok {
				out = append(out, v)
			}
		}
	}
	return out
}
