// Package txtar reads and writes the txtar archives that hold metrics'
// golden tests: a comment, then files each introduced by a line
// "-- NAME --" (the format of golang.org/x/tools/txtar, which is not a
// dependency of this module), and runs those tests over them.
package txtar

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Archive is a parsed archive.
type Archive struct {
	Comment string
	Files   []File
}

// File is one file of an archive.
type File struct {
	Name string
	Data string
}

// Parse parses data; every text is an archive, at worst all comment.
func Parse(data string) Archive {
	var a Archive
	cur := &a.Comment
	for line := range strings.Lines(data) {
		trimmed := strings.TrimRight(line, "\n")
		if name, ok := strings.CutPrefix(trimmed, "-- "); ok && strings.HasSuffix(name, " --") {
			a.Files = append(a.Files, File{Name: strings.TrimSuffix(name, " --")})
			cur = &a.Files[len(a.Files)-1].Data
			continue
		}
		*cur += line
	}
	return a
}

// Format is the archive's text, which Parse reads back.
func (a Archive) Format() string {
	var b strings.Builder
	b.WriteString(a.Comment)
	for _, f := range a.Files {
		fmt.Fprintf(&b, "-- %s --\n%s", f.Name, f.Data)
	}
	return b.String()
}

// File returns the data of the file called name, and whether there is one.
func (a Archive) File(name string) (string, bool) {
	for _, f := range a.Files {
		if f.Name == name {
			return f.Data, true
		}
	}
	return "", false
}

// SetFile replaces the data of the file called name, or adds the file.
func (a *Archive) SetFile(name, data string) {
	for i := range a.Files {
		if a.Files[i].Name == name {
			a.Files[i].Data = data
			return
		}
	}
	a.Files = append(a.Files, File{name, data})
}

// Each runs check on every archive pattern names, each in a subtest named
// after its file without the extension; it fails when pattern names none.
func Each(t *testing.T, pattern string, check func(t *testing.T, file string, a Archive)) {
	t.Helper()
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s (%v)", pattern, err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			check(t, file, Parse(string(data)))
		})
	}
}

// Rewrite writes a to file: a golden test's -update.
func Rewrite(t *testing.T, file string, a Archive) {
	t.Helper()
	if err := os.WriteFile(file, []byte(a.Format()), 0o644); err != nil {
		t.Fatal(err)
	}
}
