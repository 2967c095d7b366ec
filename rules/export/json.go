package export

import (
	"encoding/json"
	"io"
)

// WriteJSON writes {"estate", "mode", "os", "entries": [...]} with every
// field of each effective entry resolved; lists are [] rather than null.
func WriteJSON(w io.Writer, v *View) error {
	oses := v.Estate.Own.OS // as written: [] when every OS
	if oses == nil {
		oses = v.Ruleset.Config.Policy.OS
	}
	out := struct {
		Estate  string   `json:"estate"`
		Mode    string   `json:"mode"`
		OS      []string `json:"os"`
		Entries []Entry  `json:"entries"`
	}{Estate: v.Estate.Name, Mode: v.Estate.Policy.Mode, OS: orEmpty(oses), Entries: v.Entries}
	if out.Entries == nil {
		out.Entries = []Entry{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
