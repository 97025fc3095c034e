package api

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

const (
	// DefaultListLimit is how many items a list answers without ?limit.
	DefaultListLimit = 100
	// MaxListLimit is the largest ?limit of a list; beyond it the request is
	// refused with 400 (page with ?cursor instead).
	MaxListLimit = 500
	// cursorVersion begins every cursor, so its format can change.
	cursorVersion = "1:"
)

// A cursor is where the next page of a list starts: the base64url text (no
// padding) of "1:" and the id of the last item of the page before. Clients pass
// the "next" of an answer as ?cursor= and treat it as opaque.
func encodeCursor(id string) string {
	if id == "" {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(cursorVersion + id))
}

func decodeCursor(c string) (string, error) {
	if c == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	id, ok := strings.CutPrefix(string(b), cursorVersion)
	if err != nil || !ok || id == "" || len(id) > 256 {
		shown := c
		if len(shown) > 64 {
			shown = shown[:64] + "…" // it is echoed back: not the whole of a hostile one
		}
		return "", fmt.Errorf("cursor %q is not one this server gave: pass the \"next\" of the page before, or no cursor for the first page", shown)
	}
	return id, nil
}

// pageParams reads ?limit and ?cursor of a list.
func pageParams(q url.Values) (limit int, after string, err error) {
	if limit, err = listLimit(q); err != nil {
		return 0, "", err
	}
	after, err = decodeCursor(q.Get("cursor"))
	return limit, after, err
}

// listLimit reads ?limit of a list.
func listLimit(q url.Values) (int, error) {
	l := q.Get("limit")
	if l == "" {
		return DefaultListLimit, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > MaxListLimit {
		return 0, fmt.Errorf("limit must be a number from 1 to %d: page through longer lists with the cursor in \"next\"", MaxListLimit)
	}
	return n, nil
}
