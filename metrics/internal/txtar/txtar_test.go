package txtar

import "testing"

func TestRoundTrip(t *testing.T) {
	in := "comment\n-- a --\nA\n-- b --\n-- c --\nC1\nC2\n"
	a := Parse(in)
	if a.Comment != "comment\n" || len(a.Files) != 3 {
		t.Fatalf("Parse = %+v", a)
	}
	if d, ok := a.File("c"); !ok || d != "C1\nC2\n" {
		t.Errorf("File(c) = %q, %v", d, ok)
	}
	if _, ok := a.File("x"); ok {
		t.Error("File(x) found a file")
	}
	if got := a.Format(); got != in {
		t.Errorf("Format = %q, want %q", got, in)
	}
	a.SetFile("b", "B\n")
	a.SetFile("d", "D\n")
	if got, want := a.Format(), "comment\n-- a --\nA\n-- b --\nB\n-- c --\nC1\nC2\n-- d --\nD\n"; got != want {
		t.Errorf("after SetFile: %q, want %q", got, want)
	}
}
