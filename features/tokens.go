package features

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/pretrained"
	"golang.org/x/text/unicode/norm"
)

// The token spec: the text input of the exception_class model. An order's free texts
// (notes, carrier messages, integration errors, oldest first) become exactly
// MaxTokens token ids:
//
//	ids(text_k) [SEP] ids(text_k+1) [SEP] … [SEP] ids(text_n) [PAD] … [PAD]
//
// Truncation keeps the most recent texts: texts are taken newest first, each with
// the leading tokens that still fit, until the MaxTokens are used up; older texts
// are dropped. Padding ([PAD] = 0) fills the end. A text without tokens (blank) is
// skipped, and only the first maxTextBytes of a text are tokenized.
const (
	// MaxTokens is the number of token ids per order.
	MaxTokens = 64
	// PadID is the id of [PAD], the padding token; every tokenizer file must map
	// [PAD] to it.
	PadID = 0
)

// The special tokens a tokenizer file must hold.
const (
	padToken = "[PAD]"
	unkToken = "[UNK]"
	sepToken = "[SEP]"
)

const (
	// maxTextBytes bounds the part of a text that is tokenized (cut at a space):
	// no more than MaxTokens of its tokens are ever used, and the tokenizer's cost
	// grows with the input.
	maxTextBytes = 1024
	// cacheGeneration is the number of texts per cache generation; the cache holds
	// at most two generations.
	cacheGeneration = 4096
)

// shippedTokenizer is features/tokenizer/tokenizer.json, built by
// features/internal/buildtokenizer from features/tokenizer/*.txt.
//
//go:embed tokenizer/tokenizer.json
var shippedTokenizer string

// Tokenizer turns an order's free texts into the token ids of the token spec with a
// github.com/sugarme/tokenizer tokenizer loaded from a tokenizer.json file.
//
// A Tokenizer is safe for concurrent use by multiple goroutines. Encode does no I/O;
// it takes a short internal lock around a cache of per-text ids. An order's texts
// rarely change between two scorings, and tokenizing a text is slow in sugarme
// v0.3.0 (its alignment-tracking normalizer: about 0.15–0.2 ms and 1,800
// allocations for a 50-character text on the reference machine), while an order
// whose texts are cached encodes in about 0.1 µs without allocating. The cache is
// bounded: two generations of cacheGeneration texts, the older dropped as a whole.
type Tokenizer struct {
	tk        *tokenizer.Tokenizer // read-only after LoadTokenizer
	sum       string
	vocabSize int
	unk, sep  int32

	mu        sync.Mutex
	cur, prev map[string][]int32 // text → its first MaxTokens ids; never modified once stored
}

// LoadTokenizer loads a tokenizer.json file; path "" loads the tokenizer embedded in
// the binary (features/tokenizer/tokenizer.json). The file must map [PAD] to PadID
// and hold [UNK] and [SEP]. Errors name the file; a missing file matches
// fs.ErrNotExist.
func LoadTokenizer(path string) (*Tokenizer, error) {
	name, data := "embedded tokenizer/tokenizer.json", []byte(shippedTokenizer)
	if path != "" {
		var err error
		name = path
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("features: load tokenizer: %w", err)
		}
	}
	t, err := newTokenizer(data)
	if err != nil {
		return nil, fmt.Errorf("features: load tokenizer %s: %w", name, err)
	}
	return t, nil
}

func newTokenizer(data []byte) (*Tokenizer, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("empty file")
	}
	// sugarme logs through the global logger and guesses when the model has no
	// type; check the outline first.
	var outline struct {
		Model *struct {
			Type string `json:"type"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &outline); err != nil {
		return nil, err
	}
	if outline.Model == nil {
		return nil, errors.New("no model")
	}
	if outline.Model.Type == "" {
		return nil, errors.New("model has no type")
	}
	tk, err := parseTokenizer(data)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(data)
	t := &Tokenizer{
		tk:  tk,
		sum: hex.EncodeToString(sum[:]),
		cur: make(map[string][]int32),
	}
	if id, ok := tk.TokenToId(padToken); !ok || id != PadID {
		return nil, fmt.Errorf("%s must have id %d", padToken, PadID)
	}
	for _, s := range []struct {
		tok string
		id  *int32
	}{{unkToken, &t.unk}, {sepToken, &t.sep}} {
		id, ok := tk.TokenToId(s.tok)
		if !ok {
			return nil, fmt.Errorf("no %s token", s.tok)
		}
		*s.id = int32(id)
	}
	for _, id := range tk.GetVocab(true) {
		t.vocabSize = max(t.vocabSize, id+1)
	}
	// A probe shows that the model can encode at all (a malformed model may only
	// fail here) before the first batch depends on it.
	enc, err := encodeSafe(tk, "probe: EDI 855 map fail seg PO1")
	if err != nil {
		return nil, fmt.Errorf("encode probe text: %w", err)
	}
	if len(enc) == 0 || slices.ContainsFunc(enc, func(id int) bool { return id < 0 || id >= t.vocabSize }) {
		return nil, fmt.Errorf("probe text encodes to %v, outside the vocabulary of %d", enc, t.vocabSize)
	}
	return t, nil
}

// parseTokenizer runs sugarme's loader, which panics on some malformed files (it
// type-asserts JSON values without checking).
func parseTokenizer(data []byte) (tk *tokenizer.Tokenizer, err error) {
	defer func() {
		if r := recover(); r != nil {
			tk, err = nil, fmt.Errorf("malformed tokenizer: %v", r)
		}
	}()
	return pretrained.FromReader(bytes.NewReader(data))
}

// encodeSafe encodes one text without special tokens, turning a panic of the
// tokenizer library into an error.
func encodeSafe(tk *tokenizer.Tokenizer, text string) (ids []int, err error) {
	defer func() {
		if r := recover(); r != nil {
			ids, err = nil, fmt.Errorf("tokenizer panic: %v", r)
		}
	}()
	enc, err := tk.EncodeSingle(text, false)
	if err != nil {
		return nil, err
	}
	return enc.Ids, nil
}

// VocabSize is the size of the embedding table the ids index: every id Encode
// returns is in [0, VocabSize).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// SHA256 is the hex SHA-256 of the tokenizer file, to check that a model bundle was
// trained with the tokenizer in use.
func (t *Tokenizer) SHA256() string { return t.sum }

// Encode appends exactly MaxTokens token ids for texts (oldest first) to dst, laid
// out as the token spec says, and returns the extended slice; pass dst[:0] to reuse
// a buffer, or keep appending to build a batch of orders. It does not allocate when
// dst has room and the texts were encoded recently.
func (t *Tokenizer) Encode(texts []string, dst []int64) []int64 {
	dst = slices.Grow(dst, MaxTokens)
	// Newest first: the ids of each text that fit. Every picked text takes at
	// least one id plus a separator, so at most MaxTokens/2+1 are picked.
	var picked [MaxTokens/2 + 1][]int32
	n, room := 0, MaxTokens
	for i := len(texts) - 1; i >= 0 && room > 0; i-- {
		ids := t.textIDs(texts[i])
		if len(ids) == 0 {
			continue
		}
		if n > 0 {
			if room < 2 {
				break
			}
			room-- // the separator after this text
		}
		ids = ids[:min(len(ids), room)]
		picked[n] = ids
		n++
		room -= len(ids)
	}
	for j := n - 1; j >= 0; j-- {
		for _, id := range picked[j] {
			dst = append(dst, int64(id))
		}
		if j > 0 {
			dst = append(dst, int64(t.sep))
		}
	}
	for range room {
		dst = append(dst, PadID)
	}
	return dst
}

// textIDs returns the first MaxTokens ids of text, from the cache when it can. The
// returned slice must not be modified.
func (t *Tokenizer) textIDs(text string) []int32 {
	text, clipped := clipText(text)
	t.mu.Lock()
	ids, ok := t.cur[text]
	if !ok {
		if ids, ok = t.prev[text]; ok {
			t.storeLocked(text, ids)
		}
	}
	t.mu.Unlock()
	if ok {
		return ids
	}
	ids = t.encodeText(text)
	if clipped {
		text = strings.Clone(text) // do not keep the whole long text alive
	}
	t.mu.Lock()
	t.storeLocked(text, ids)
	t.mu.Unlock()
	return ids
}

func (t *Tokenizer) storeLocked(text string, ids []int32) {
	if len(t.cur) >= cacheGeneration {
		t.prev, t.cur = t.cur, make(map[string][]int32, cacheGeneration)
	}
	t.cur[text] = ids
}

// encodeText tokenizes one text and keeps its first MaxTokens ids. A text the
// tokenizer library fails on (it should not for a file that passed LoadTokenizer)
// becomes a single [UNK], so one odd message cannot stop scoring.
func (t *Tokenizer) encodeText(text string) []int32 {
	enc, err := encodeSafe(t.tk, prepareText(text))
	if err != nil {
		return []int32{t.unk}
	}
	ids := make([]int32, min(len(enc), MaxTokens))
	for i := range ids {
		ids[i] = int32(enc[i])
	}
	return ids
}

// prepareText makes text valid UTF-8, NFKC-normalized and lower case before the
// tokenizer's own normalizer runs. The file's normalizer does NFKC and lower-casing
// as well (so ids do not change, and a Python consumer of the same file gets the
// same ids), but sugarme v0.3.0 garbles invalid UTF-8 and misaligns or panics when
// one of these steps changes a character's length (for example "ẞ" → "ß"); on text
// already in that form they are no-ops. Both calls return text itself, without
// allocating, when there is nothing to change.
func prepareText(text string) string {
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, " ")
	}
	return strings.ToLower(norm.NFKC.String(text))
}

// clipText cuts text to at most maxTextBytes, at the last whitespace if there is
// one, otherwise at a character boundary, and reports whether it cut.
func clipText(text string) (string, bool) {
	if len(text) <= maxTextBytes {
		return text, false
	}
	cut := text[:maxTextBytes+1]
	if i := strings.LastIndexFunc(cut, unicode.IsSpace); i > 0 {
		return text[:i], true
	}
	i := maxTextBytes
	for i > 0 && !utf8.RuneStart(text[i]) {
		i--
	}
	return text[:i], true
}
