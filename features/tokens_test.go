package features

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func loadShipped(tb testing.TB) *Tokenizer {
	tb.Helper()
	tok, err := LoadTokenizer("")
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// pieces tokenizes one text with the library directly, for expectations.
func pieces(tb testing.TB, tok *Tokenizer, text string) (ids []int64, toks []string) {
	tb.Helper()
	enc, err := tok.tk.EncodeSingle(prepareText(text), false)
	if err != nil {
		tb.Fatal(err)
	}
	for _, id := range enc.Ids {
		ids = append(ids, int64(id))
	}
	return ids, enc.Tokens
}

func repeat(word string, n int) string {
	return strings.TrimSpace(strings.Repeat(word+" ", n))
}

func TestLoadTokenizerEmbedded(t *testing.T) {
	tok := loadShipped(t)
	sum := sha256.Sum256([]byte(shippedTokenizer))
	if got, want := tok.SHA256(), hex.EncodeToString(sum[:]); got != want {
		t.Errorf("SHA256() = %s, want %s", got, want)
	}
	if n := tok.VocabSize(); n < 1000 || n > 4000 {
		t.Errorf("VocabSize() = %d, want a small vocabulary (1000..4000)", n)
	}

	// The same file loaded from disk is the same tokenizer.
	path := filepath.Join(t.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, []byte(shippedTokenizer), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := LoadTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.SHA256() != tok.SHA256() || fromFile.VocabSize() != tok.VocabSize() {
		t.Errorf("file copy: sha %s vocab %d, embedded: sha %s vocab %d",
			fromFile.SHA256(), fromFile.VocabSize(), tok.SHA256(), tok.VocabSize())
	}
	texts := []string{"cust called, needs it tmrw AM", "EDI 855 map fail seg PO1 qty UOM 'CSE' unknown"}
	if a, b := tok.Encode(texts, nil), fromFile.Encode(texts, nil); !slices.Equal(a, b) {
		t.Errorf("file copy encodes to %v, embedded to %v", b, a)
	}
}

func TestLoadTokenizerErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tests := []struct {
		name string
		path string
		want string // in the error, besides the path
	}{
		{"missing", filepath.Join(dir, "nope.json"), "no such file"},
		{"directory", dir, "directory"},
		{"empty", write("empty.json", " \n"), "empty file"},
		{"truncated", write("truncated.json", shippedTokenizer[:len(shippedTokenizer)/2]), "unexpected end of JSON input"},
		{"not json", write("garbage.json", "PK\x03\x04 not a tokenizer"), "invalid character"},
		{"no model", write("nomodel.json", "{}"), "no model"},
		{"model without type", write("notype.json", `{"model":{"vocab":{}}}`), "model has no type"},
		{"model without vocab", write("novocab.json", `{"model":{"type":"WordPiece"}}`), "malformed tokenizer"},
		{"unknown model type", write("type.json", `{"model":{"type":"Magic","vocab":{}}}`), "CreateModel"},
		{"pad not zero", write("pad.json", strings.Replace(shippedTokenizer, `"[PAD]": 0`, `"[PAD]": 4000`, 1)), "[PAD] must have id 0"},
		{"no sep", write("sep.json", strings.Replace(shippedTokenizer, `"[SEP]"`, `"[XEP]"`, 1)), "no [SEP] token"},
		{"no unk", write("unk.json", strings.ReplaceAll(shippedTokenizer, `"[UNK]"`, `"[XNK]"`)), "no [UNK] token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok, err := LoadTokenizer(tt.path)
			if err == nil {
				t.Fatalf("LoadTokenizer(%s) = %v, want an error", tt.path, tok)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "features: load tokenizer") || !strings.Contains(msg, tt.path) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q: want the prefix \"features: load tokenizer\", the file and %q", msg, tt.want)
			}
		})
	}
	if _, err := LoadTokenizer(filepath.Join(dir, "nope.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v does not match fs.ErrNotExist", err)
	}
}

// Realistic texts, worded differently from the corpus.
var realisticTexts = []string{
	"DEL EXCPT - consignee closed, reattempt nxt bus day",
	"cust called again, needs it tmrw AM latest, pls expedite",
	"EDI 855 map fail seg PO1 qty UOM 'CSE' unknown",
	"EDI 856 rejected: SSCC missing on pallet 2 of 3",
	"API 503 from carrier rating svc, retry 2/3 failed",
	"Invoice rejected by portal: price on line 7 does not match PO",
	"AR: acct 45 days past due, do not release until payment posted",
	"price below contract floor, waiting on RSM approval",
	"short 12 cs on line 3, backorder ETA 6/20",
	"Address validation failed: ZIP 30301 does not match city",
	"Delay: weather at Memphis hub, ETA +1 day",
	"GTIN 00012345678905 not in item master",
}

func TestEncodeRealisticText(t *testing.T) {
	tok := loadShipped(t)
	for _, text := range realisticTexts {
		ids := tok.Encode([]string{text}, nil)
		if len(ids) != MaxTokens {
			t.Fatalf("%q: %d ids, want %d", text, len(ids), MaxTokens)
		}
		var real, unk int
		for _, id := range ids {
			if id < 0 || id >= int64(tok.VocabSize()) {
				t.Errorf("%q: id %d outside [0, %d)", text, id, tok.VocabSize())
			}
			if id != PadID {
				real++
			}
			if id == int64(tok.unk) {
				unk++
			}
		}
		if real == 0 || unk > 0 {
			_, toks := pieces(t, tok, text)
			t.Errorf("%q: %d tokens, %d [UNK]: %v", text, real, unk, toks)
		}
	}
}

// Decoding the ids gives back the text, lower-cased and with accents and
// compatibility forms normalized away: no information is lost on ordinary text.
func TestEncodeRoundTrip(t *testing.T) {
	tok := loadShipped(t)
	tests := []struct{ text, want string }{
		{"DEL EXCPT - consignee closed, reattempt nxt bus day", "del excpt - consignee closed, reattempt nxt bus day"},
		{"EDI 810 rejected: invoice total does not match ASN", "edi 810 rejected : invoice total does not match asn"},
		{"Delivery to Café Olé, Montréal — ﬁx ＡＳＮ", "delivery to cafe ole, montreal — fix asn"},
		{"shpiment to warehosue reattmpt", "shpiment to warehosue reattmpt"},
		{"Lieferung nach Łódź, Straße 5", "lieferung nach łodz, straße 5"},
	}
	for _, tt := range tests {
		ids := tok.Encode([]string{tt.text}, nil)
		n := slices.Index(ids, PadID)
		ints := make([]int, n)
		for i := range n {
			ints[i] = int(ids[i])
		}
		if got := tok.tk.Decode(ints, false); got != tt.want {
			_, toks := pieces(t, tok, tt.text)
			t.Errorf("%q decodes to %q, want %q (tokens %v)", tt.text, got, tt.want, toks)
		}
	}
}

// Misspelt and foreign words the corpus never saw split into known pieces instead
// of becoming [UNK].
func TestEncodeUnseenWordsSplit(t *testing.T) {
	tok := loadShipped(t)
	vocab := tok.tk.GetVocab(false)
	for _, word := range []string{"shpiment", "consginee", "warehosue", "reattmpt", "apointment", "Straße", "Łódź", "Ærøskøbing", "xq7zzk"} {
		if _, ok := vocab[strings.ToLower(word)]; ok {
			t.Errorf("%q is in the vocabulary; pick a word the corpus does not have", word)
			continue
		}
		ids, toks := pieces(t, tok, word)
		if len(ids) < 2 || slices.Contains(ids, int64(tok.unk)) {
			t.Errorf("%q tokenizes to %v, want two or more known pieces", word, toks)
		}
	}
}

func TestEncodeLayout(t *testing.T) {
	tok := loadShipped(t)
	// Words that are one token each, so texts of known lengths are easy to build.
	id := func(word string) int64 {
		ids, toks := pieces(t, tok, word)
		if len(ids) != 1 {
			t.Fatalf("%q is not a single token: %v", word, toks)
		}
		return ids[0]
	}
	a, b, c := id("carrier"), id("invoice"), id("customer")
	sep := int64(tok.sep)
	seq := func(parts ...any) []int64 {
		var out []int64
		for _, p := range parts {
			switch p := p.(type) {
			case int64:
				out = append(out, p)
			case []int64:
				out = append(out, p...)
			}
		}
		for len(out) < MaxTokens {
			out = append(out, PadID)
		}
		return out
	}
	n := func(id int64, k int) []int64 { return slices.Repeat([]int64{id}, k) }

	tests := []struct {
		name  string
		texts []string
		want  []int64
	}{
		{"no texts", nil, seq()},
		{"blank texts", []string{"", " \t\n"}, seq()},
		{"one text", []string{"carrier invoice"}, seq(a, b)},
		{"oldest first, separated", []string{"carrier", "invoice", "customer"}, seq(a, sep, b, sep, c)},
		{"blank text skipped", []string{"carrier", "  ", "customer"}, seq(a, sep, c)},
		{"newest too long keeps its head", []string{"carrier", repeat("invoice", 70) + " customer"}, n(b, MaxTokens)},
		{"newest exactly fills", []string{"carrier", repeat("invoice", MaxTokens)}, n(b, MaxTokens)},
		{"no room for separator and a token", []string{"carrier", repeat("invoice", MaxTokens-1)}, seq(n(b, MaxTokens-1))},
		{"older text cut to its head", []string{"carrier customer", repeat("invoice", MaxTokens-2)}, seq(a, sep, n(b, MaxTokens-2))},
		{"oldest dropped", []string{"customer", repeat("carrier", 30), repeat("invoice", 20), repeat("customer", 30)},
			seq(n(a, 12), sep, n(b, 20), sep, n(c, 30))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tok.Encode(tt.texts, nil)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%.60q)\n got %v\nwant %v", tt.texts, got, tt.want)
			}
		})
	}

	t.Run("appends to dst", func(t *testing.T) {
		dst := []int64{7, 7}
		got := tok.Encode([]string{"carrier"}, dst)
		if len(got) != 2+MaxTokens || got[0] != 7 || got[1] != 7 || !slices.Equal(got[2:], seq(a)) {
			t.Errorf("Encode with a 2-id dst = %v", got)
		}
		batch := tok.Encode([]string{"invoice"}, got)
		if len(batch) != 2+2*MaxTokens || !slices.Equal(batch[2+MaxTokens:], seq(b)) {
			t.Errorf("second order of a batch = %v", batch[2+MaxTokens:])
		}
	})
}

func TestEncodeDeterministic(t *testing.T) {
	first, second := loadShipped(t), loadShipped(t)
	texts := realisticTexts[:4]
	want := first.Encode(texts, nil)
	if got := first.Encode(texts, nil); !slices.Equal(got, want) { // from the cache
		t.Errorf("second Encode = %v, first %v", got, want)
	}
	if got := second.Encode(texts, nil); !slices.Equal(got, want) { // another instance
		t.Errorf("another tokenizer encodes to %v, want %v", got, want)
	}
}

// Encode from many goroutines at once, on texts none of them has seen: run with
// -race, this also covers the tokenizer library's encode path.
func TestEncodeConcurrent(t *testing.T) {
	shared, ref := loadShipped(t), loadShipped(t)
	const workers, perWorker = 4, 25
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				// Overlapping texts: workers race on the same cache entries too.
				texts := []string{realisticTexts[(w+i)%len(realisticTexts)], fmt.Sprintf("note %d: call buyer re PO %d", i, i*7)}
				got := shared.Encode(texts, nil)
				if want := ref.Encode(texts, nil); !slices.Equal(got, want) {
					errs <- fmt.Sprintf("%q: %v, want %v", texts, got, want)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestTextCacheBounded(t *testing.T) {
	tok := loadShipped(t)
	tok.textIDs("customer") // oldest entry
	for i := range 2 * cacheGeneration {
		tok.mu.Lock()
		tok.storeLocked(fmt.Sprint("text ", i), []int32{3})
		tok.mu.Unlock()
	}
	if n := len(tok.cur) + len(tok.prev); n > 2*cacheGeneration {
		t.Errorf("cache holds %d texts, want at most %d", n, 2*cacheGeneration)
	}
	if _, ok := tok.cur["customer"]; ok {
		t.Error("the oldest text is still cached")
	}
	// A hit in the previous generation moves the text to the current one.
	old := fmt.Sprint("text ", cacheGeneration-1)
	if _, ok := tok.prev[old]; !ok {
		t.Fatalf("%q not in the previous generation", old)
	}
	tok.textIDs(old)
	if _, ok := tok.cur[old]; !ok {
		t.Errorf("%q not promoted to the current generation", old)
	}
}

func TestEncodeCachedDoesNotAllocate(t *testing.T) {
	tok := loadShipped(t)
	texts := realisticTexts[:3]
	dst := tok.Encode(texts, nil)
	if n := testing.AllocsPerRun(100, func() { dst = tok.Encode(texts, dst[:0]) }); n != 0 {
		t.Errorf("Encode of cached texts into a reused buffer: %v allocations, want 0", n)
	}
}

func TestClipText(t *testing.T) {
	long := repeat("consignee", 400) // 4000 bytes
	got, clipped := clipText(long)
	if !clipped || len(got) > maxTextBytes || !strings.HasSuffix(got, "consignee") {
		t.Errorf("clipText(words) = %d bytes ending %q, clipped %v", len(got), got[max(0, len(got)-12):], clipped)
	}
	noSpace := strings.Repeat("é", 1000) // 2000 bytes, no space
	got, _ = clipText(noSpace)
	if len(got) > maxTextBytes || !strings.HasPrefix(noSpace, got) || strings.ContainsRune(got, '\uFFFD') || len(got) < maxTextBytes-1 {
		t.Errorf("clipText(no spaces) = %d bytes, want a whole-character prefix of at most %d", len(got), maxTextBytes)
	}
	if got, clipped := clipText("short"); got != "short" || clipped {
		t.Errorf("clipText(short) = %q, %v", got, clipped)
	}
	// A huge text still encodes, and its head is what counts.
	tok := loadShipped(t)
	want := tok.Encode([]string{repeat("invoice", MaxTokens)}, nil)
	if got := tok.Encode([]string{repeat("invoice", 20000)}, nil); !slices.Equal(got, want) {
		t.Errorf("a 160 kB text encodes to %v, want %v", got, want)
	}
}

func FuzzEncode(f *testing.F) {
	for _, s := range realisticTexts {
		f.Add(s, "cust called, needs it tmrw AM")
	}
	for _, s := range []string{"", " ", "\xff\xfe bad utf8", "ẞ Ⱥ Ɫ İstanbul", "[PAD] [SEP] [UNK]", "😀☃ ﬁ ＡＢＣ", "\u0000\u200b\ufeff", "a\u0301\u0302\u0303"} {
		f.Add(s, s)
	}
	tok, err := LoadTokenizer("")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, older, newer string) {
		texts := []string{older, newer}
		ids := tok.Encode(texts, nil)
		if len(ids) != MaxTokens {
			t.Fatalf("%d ids, want %d", len(ids), MaxTokens)
		}
		for _, id := range ids {
			if id < 0 || id >= int64(tok.VocabSize()) {
				t.Fatalf("id %d outside [0, %d)", id, tok.VocabSize())
			}
		}
		// Padding only at the end.
		if i := slices.Index(ids, PadID); i >= 0 && slices.ContainsFunc(ids[i:], func(id int64) bool { return id != PadID }) {
			t.Fatalf("[PAD] inside the ids: %v", ids)
		}
		if again := tok.Encode(texts, nil); !slices.Equal(again, ids) {
			t.Fatalf("second Encode %v, first %v", again, ids)
		}
	})
}

// benchOrder is a typical order's texts: a note, a carrier message and an
// integration error.
var benchOrder = []string{
	"cust called, needs it tmrw AM, pls expedite if poss",
	"DEL EXCPT - consignee closed, reattempt nxt bus day",
	"EDI 855 map fail seg PO1 qty UOM 'CSE' unknown",
}

// BenchmarkEncode is the steady state of scoring: an order's texts were seen at an
// earlier scoring and come from the cache.
func BenchmarkEncode(b *testing.B) {
	tok := loadShipped(b)
	dst := tok.Encode(benchOrder, nil)
	b.ReportAllocs()
	for b.Loop() {
		dst = tok.Encode(benchOrder, dst[:0])
	}
}

// BenchmarkEncodeUncached is an order whose three texts are all new: the tokenizer
// library's cost per order.
func BenchmarkEncodeUncached(b *testing.B) {
	tok := loadShipped(b)
	b.ReportAllocs()
	for b.Loop() {
		for _, text := range benchOrder {
			tok.encodeText(text)
		}
	}
}
