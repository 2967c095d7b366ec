package upkeep

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

// TestPageTextImportsLikeTheSavedPage: the HTML rendering of the excerpt,
// inside a documentation site's navigation, scripts and styles, imports
// to the same catalog as the saved text, and nothing of the site's
// furniture becomes an entry.
func TestPageTextImportsLikeTheSavedPage(t *testing.T) {
	html, err := os.ReadFile("../../cmd/egressgate/testdata/watch/page-excerpt.html")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(html)
	}))
	defer srv.Close()
	text, err := FetchPage(context.Background(), srv.Client(), srv.URL+"/page")
	if err != nil {
		t.Fatal(err)
	}
	for _, furniture := range []string{"track.example.net", "status.example.net", "related.example.org", "footer.example.net", "noscript.example.net", "font-family"} {
		if strings.Contains(string(text), furniture) {
			t.Errorf("page text keeps %q:\n%s", furniture, text)
		}
	}
	fromHTML, unc, err := ImportPage("page.html", text, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(unc) > 0 {
		t.Errorf("unclassified: %+v\n%s", unc, text)
	}
	fromText, _, err := ImportPage("page.txt", []byte(excerpt(t)), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(fromText, fromHTML, true); len(d) > 0 {
		t.Errorf("the HTML page imports with %d changes from the saved text, first %s\n%s", len(d), d[0], text)
	}
	if len(fromHTML.Licenses) != 2 {
		t.Errorf("licences %v, want the page's two", fromHTML.Licenses)
	}
}

func TestFetchPageErrors(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	for _, tt := range []struct{ url, want string }{
		{srv.URL, "503 Service Unavailable"},
		{"http://example.org/page", "want an https:// URL"},
		{"ftp://example.org/page", "want an https:// URL"},
	} {
		_, err := FetchPage(context.Background(), srv.Client(), tt.url)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("FetchPage(%s) = %v, want an error containing %q", tt.url, err, tt.want)
		}
	}
	// A server with a certificate the client does not trust.
	if _, err := FetchPage(context.Background(), http.DefaultClient, srv.URL); err == nil {
		t.Error("FetchPage trusted the test server's certificate with the default client")
	}
	if _, err := PageClient("ftp://proxy:1"); err == nil {
		t.Error("PageClient accepted an ftp proxy")
	}
}

// FuzzPageText: any HTML reduces to text or an error, never a panic, and
// the text of a page imports or fails with an error.
func FuzzPageText(f *testing.F) {
	f.Add("<h2>Remote assistance</h2><ul><li>Port: 22 TCP</li><li>*.apu.sophos.com</li></ul>")
	f.Add("<ol><li>Allow these Sophos domains:<ul><li>central.sophos.com</li></ul></li></ol>")
	f.Add("<nav><ul><li>x.example.org</li></ul></nav><script>1</script><p>Domains for XDR and MDR</p><ul><li><ul><li>a.example.net")
	f.Add("")
	f.Fuzz(func(t *testing.T, page string) {
		text, err := PageText(strings.NewReader(page))
		if err != nil {
			return
		}
		if strings.Contains(string(text), "\x00") && !strings.Contains(page, "\x00") {
			t.Fatalf("text has a NUL the page did not: %q", text)
		}
		ImportPage("fuzz.html", text, Options{})
	})
}
