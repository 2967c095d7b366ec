package upkeep

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"
)

// maxFetchBytes bounds a fetched page: the vendor's HTML is a few hundred
// kilobytes with its scripts.
const maxFetchBytes = 8 << 20

// PageClient returns the HTTP client that fetches the vendor page: direct,
// or through the HTTP proxy via ("host:port" or "http://host:port"), such
// as egressgate itself.
func PageClient(via string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if via != "" {
		if !strings.Contains(via, "://") {
			via = "http://" + via
		}
		u, err := url.Parse(via)
		if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("proxy %q: want host:port or http://host:port", via)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

// FetchPage gets the vendor page at rawURL, which must be https://, and
// returns its text as ImportPage reads it: an HTML page is reduced to its
// headings, paragraphs and list items (see PageText); plain text is
// returned as it is.
func FetchPage(ctx context.Context, client *http.Client, rawURL string) ([]byte, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("page URL %q: want an https:// URL", rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("page URL %q: %w", rawURL, err)
	}
	req.Header.Set("Accept", "text/html, text/plain;q=0.9")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", u.Redacted(), resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxFetchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u.Redacted(), err)
	}
	if len(body) > maxFetchBytes {
		return nil, fmt.Errorf("fetching %s: more than %d bytes", u.Redacted(), maxFetchBytes)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "text/plain" {
		return body, nil
	}
	text, err := PageText(strings.NewReader(string(body)))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u.Redacted(), err)
	}
	return text, nil
}

// skipped are the elements whose text is not the page's: scripts, styles,
// navigation and the site's furniture around the content.
var skipped = map[string]bool{"script": true, "style": true, "noscript": true, "template": true,
	"nav": true, "aside": true, "footer": true, "svg": true, "form": true, "button": true, "head": true}

// blocks are the elements that start a line of their own.
var blocks = map[string]bool{"p": true, "div": true, "section": true, "article": true, "main": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true, "pre": true, "br": true,
	"table": true, "tr": true, "td": true, "th": true, "dt": true, "dd": true, "blockquote": true,
	"header": true, "ul": true, "ol": true}

// PageText reduces an HTML page to the text layout of a saved copy of the
// page: headings and paragraphs at the margin, list items indented two
// spaces per level with "•" (or "N." in an ordered list), a blank line
// between blocks. Scripts, styles and navigation are dropped.
func PageText(r io.Reader) ([]byte, error) {
	doc, err := html.Parse(r)
	if err != nil {
		return nil, err
	}
	var w textWriter
	w.walk(doc)
	w.flush()
	if w.out.Len() == 0 {
		return nil, errors.New("the page has no text")
	}
	return []byte(w.out.String()), nil
}

// textWriter collects the text of one line at a time.
type textWriter struct {
	out    strings.Builder
	line   strings.Builder
	depth  int    // list nesting
	marker string // the list item's marker, for its first line
}

func (w *textWriter) walk(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		w.line.WriteString(n.Data)
		return
	case html.ElementNode:
		if skipped[n.Data] {
			return
		}
	}
	if n.Type == html.ElementNode && n.Data == "li" {
		w.item(n)
		return
	}
	block := n.Type == html.ElementNode && blocks[n.Data]
	if block {
		w.flush()
	}
	list := n.Type == html.ElementNode && (n.Data == "ul" || n.Data == "ol")
	if list {
		w.depth++
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.walk(c)
	}
	if list {
		w.depth--
	}
	if block {
		w.flush()
	}
}

// item writes a list item: its marker, its text, then any list inside it.
func (w *textWriter) item(n *html.Node) {
	w.flush()
	w.marker = "•"
	if p := n.Parent; p != nil && p.Data == "ol" {
		k := 1
		for s := n.PrevSibling; s != nil; s = s.PrevSibling {
			if s.Type == html.ElementNode && s.Data == "li" {
				k++
			}
		}
		w.marker = fmt.Sprintf("%d.", k)
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.walk(c)
	}
	w.flush()
	w.marker = ""
}

// flush writes the line collected so far, with whitespace collapsed.
func (w *textWriter) flush() {
	text := strings.Join(strings.Fields(w.line.String()), " ")
	w.line.Reset()
	if text == "" {
		return
	}
	indent := strings.Repeat("  ", w.depth)
	if w.marker != "" {
		text = w.marker + " " + text
		w.marker = ""
	} else if w.depth > 0 {
		indent += "  "
	}
	w.out.WriteString(indent + text + "\n\n")
}
