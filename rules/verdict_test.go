package rules

import "testing"

// TestReasonNames checks that every reason of the vocabulary has its own
// name: a reason added to the constants without one would print "".
func TestReasonNames(t *testing.T) {
	seen := map[string]Reason{}
	for r := ReasonNone + 1; r < numReasons; r++ {
		name := r.String()
		if name == "" {
			t.Errorf("reason %d has no name", r)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("reasons %d and %d are both %q", prev, r, name)
		}
		seen[name] = r
	}
	if got := len(Reasons()) + len(AnswerReasons()); got != int(numReasons)-1 {
		t.Errorf("Reasons and AnswerReasons list %d reasons, want %d", got, numReasons-1)
	}
}
