package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const moduleRoot = "../../.."

// The shipped tokenizer is what the shipped corpus builds: editing
// features/tokenizer/*.txt without rebuilding fails here.
func TestShippedTokenizerUpToDate(t *testing.T) {
	inputs, err := DefaultInputs(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := ReadCorpus(inputs)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Build(lines, DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := os.ReadFile(filepath.Join(moduleRoot, filepath.FromSlash(defaultOut)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, shipped) {
		t.Errorf("%s is stale; rebuild it from the module root with: go run ./features/internal/buildtokenizer", defaultOut)
	}
}

var sample = []string{
	"DEL EXCPT - consignee closed, reattempt nxt bus day",
	"EDI 855 map fail seg PO1 qty UOM 'CSE' unknown",
	"cust called, needs it tmrw AM, pls expedite if poss",
	"EDI 856 ASN rejected by partner: missing SSCC-18 in HL loop",
	"Customer disputes past-due balance, AR reviewing, do not release",
	"consignee closed, reattempt next business day",
}

// The output depends on the corpus lines and options only, not on line order, map
// order or timing.
func TestBuildDeterministic(t *testing.T) {
	first, _, err := Build(sample, DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	reversed := slices.Clone(sample)
	slices.Reverse(reversed)
	for range 3 {
		again, _, err := Build(reversed, DefaultOptions)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, first) {
			t.Fatal("two builds of the same corpus differ")
		}
	}
}

func TestBuildVocabulary(t *testing.T) {
	data, stats, err := Build(sample, Options{VocabSize: 400, MinFreq: 1})
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		AddedTokens []any `json:"added_tokens"`
		Model       struct {
			Type  string         `json:"type"`
			Vocab map[string]int `json:"vocab"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	if stats.VocabSize != 400 || len(file.Model.Vocab) != 400 {
		t.Errorf("vocab size %d (file %d), want the cap of 400", stats.VocabSize, len(file.Model.Vocab))
	}
	if file.Model.Type != "WordPiece" || len(file.AddedTokens) != 0 {
		t.Errorf("model %q with %d added tokens, want WordPiece with none", file.Model.Type, len(file.AddedTokens))
	}
	ids := make(map[int]bool)
	for tok, id := range file.Model.Vocab {
		if id < 0 || id >= len(file.Model.Vocab) || ids[id] {
			t.Errorf("token %q has id %d: ids must be 0..n-1, each once", tok, id)
		}
		ids[id] = true
	}
	for i, s := range specials {
		if file.Model.Vocab[s] != i {
			t.Errorf("%s has id %d, want %d", s, file.Model.Vocab[s], i)
		}
	}
	for _, tok := range []string{"consignee", "closed", "reattempt"} { // frequent words merge whole
		if _, ok := file.Model.Vocab[tok]; !ok {
			t.Errorf("frequent word %q not in the vocabulary", tok)
		}
	}
	if _, _, err := Build(sample, Options{VocabSize: 2}); err == nil {
		t.Error("Build with a vocabulary smaller than the special tokens: no error")
	}
}
