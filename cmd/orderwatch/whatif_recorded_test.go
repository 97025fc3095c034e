package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRecordedStopsOnARepeatedCursor: an API that hands back the cursor it was
// given would page forever; --recorded says so and stops.
func TestRecordedStopsOnARepeatedCursor(t *testing.T) {
	var pages atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pages.Add(1) > 10 {
			http.Error(w, "too many pages", http.StatusTeapot)
			return
		}
		fmt.Fprint(w, `{"decisions":[{"decision":{"id":"d"}}],"next":"same"}`)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := 0
	err := recordedFromAPI(srv.URL, func(string) string { return "" })(ctx, time.Now(), func([]byte) error { got++; return nil })
	if err == nil || !strings.Contains(err.Error(), "returned the cursor it was given") {
		t.Fatalf("err %v after %d pages, want the repeated cursor named", err, pages.Load())
	}
	if pages.Load() != 2 || got != 2 {
		t.Errorf("read %d pages, %d decisions: want to stop at the second page", pages.Load(), got)
	}
}

// TestAPIClientBoundsTheResponse: a server that answers without end does not
// fill the CLI's memory; the client stops reading past its bound and says why.
func TestAPIClientBoundsTheResponse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := strings.Repeat("x", 1<<20)
		for range maxAPIResponse>>20 + 2 {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	var out strings.Builder
	err := newAPIClient(srv.URL, func(string) string { return "" }).do(http.MethodGet, "/api/v1/decisions", nil, &out)
	if err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Fatalf("err %v, want the response refused as too large", err)
	}
	if out.Len() != 0 {
		t.Errorf("wrote %d bytes of a refused response", out.Len())
	}
}
