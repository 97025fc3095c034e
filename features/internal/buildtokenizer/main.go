// Command buildtokenizer trains the WordPiece tokenizer that turns an order's free
// texts (notes, carrier messages, integration errors) into token ids, and writes it
// as a tokenizer.json, in Hugging Face's layout, that github.com/sugarme/tokenizer
// loads. The features package embeds the result; model bundles ship a copy.
//
// Usage, from the module root:
//
//	go run ./features/internal/buildtokenizer [-out FILE] [-vocab N] [-min-freq N] [CORPUS.txt ...]
//
// Each corpus file holds one text per line; blank lines are skipped. With no corpus
// arguments it reads features/tokenizer/*.txt in name order, which is how the
// shipped features/tokenizer/tokenizer.json is built: put further corpora (for
// example texts exported from the simulator) into that folder as .txt files so the
// shipped file stays reproducible from shipped inputs. The output depends only on
// the corpus lines and the flags: building twice gives byte-identical files.
//
// Why not sugarme/tokenizer's own trainer: in v0.3.0 its BPE/WordPiece trainer breaks
// ties between equally frequent pairs by map order and time.Now (not reproducible),
// writes the "##" subword prefix through a pointer (the vocabulary gets entries like
// "0xc000123a"), leaves the special tokens out of the model vocabulary, and
// Tokenizer.Save is a stub. So this program counts words with sugarme's own
// normalizer and pre-tokenizer, built from the very JSON it ships (training and
// encoding cannot drift apart), learns the vocabulary with the same algorithm as
// Hugging Face's WordPiece trainer (byte-pair merges over "##"-prefixed characters)
// with deterministic tie-breaking, writes the file itself and finally loads it back
// with sugarme's pretrained.FromReader to check that every corpus word tokenizes
// without [UNK].
package main

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sugarme/tokenizer"
	"github.com/sugarme/tokenizer/normalizer"
	"github.com/sugarme/tokenizer/pretrained"
	"golang.org/x/text/unicode/norm"
)

// Special tokens, in id order: [PAD] must stay 0 (features pads with 0).
var specials = []string{"[PAD]", "[UNK]", "[SEP]"}

const (
	unkToken             = "[UNK]"
	subwordPrefix        = "##"
	maxInputCharsPerWord = 100
	defaultCorpusGlob    = "features/tokenizer/*.txt"
	defaultOut           = "features/tokenizer/tokenizer.json"
)

// Options are the training parameters; they are all the output depends on besides
// the corpus lines.
type Options struct {
	VocabSize int // upper bound on the vocabulary, special tokens and alphabet included
	MinFreq   int // a merge needs a pair seen at least this often
}

// DefaultOptions are the parameters of the shipped tokenizer.
var DefaultOptions = Options{VocabSize: 3000, MinFreq: 2}

func main() {
	out := flag.String("out", defaultOut, "tokenizer file to write")
	vocab := flag.Int("vocab", DefaultOptions.VocabSize, "maximum vocabulary size, special tokens included")
	minFreq := flag.Int("min-freq", DefaultOptions.MinFreq, "minimum pair frequency for a merge")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: buildtokenizer [-out FILE] [-vocab N] [-min-freq N] [CORPUS.txt ...]\n\n"+
			"With no CORPUS it reads %s.\n\n", defaultCorpusGlob)
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*out, flag.Args(), Options{VocabSize: *vocab, MinFreq: *minFreq}); err != nil {
		fmt.Fprintln(os.Stderr, "buildtokenizer:", err)
		os.Exit(1)
	}
}

func run(out string, inputs []string, opts Options) error {
	if len(inputs) == 0 {
		var err error
		if inputs, err = DefaultInputs("."); err != nil {
			return err
		}
	}
	lines, err := ReadCorpus(inputs)
	if err != nil {
		return err
	}
	data, stats, err := Build(lines, opts)
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, data, 0o644); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	fmt.Printf("wrote %s: %d texts from %d file(s), %d distinct words, vocab %d (%d merges), sha256 %s\n",
		out, len(lines), len(inputs), stats.Words, stats.VocabSize, stats.Merges, hex.EncodeToString(sum[:]))
	return nil
}

// DefaultInputs lists the corpus files of the shipped tokenizer below root (the
// module root) in name order.
func DefaultInputs(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, filepath.FromSlash(defaultCorpusGlob)))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no corpus files match %s under %s (run from the module root)", defaultCorpusGlob, root)
	}
	slices.Sort(files)
	return files, nil
}

// ReadCorpus returns the non-blank lines of files, in order.
func ReadCorpus(files []string) ([]string, error) {
	var lines []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				lines = append(lines, l)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
	}
	if len(lines) == 0 {
		return nil, errors.New("corpus is empty")
	}
	return lines, nil
}

// Stats describes a built tokenizer.
type Stats struct {
	Words     int // distinct pre-tokenized words in the corpus
	VocabSize int
	Merges    int
}

// The normalizer, pre-tokenizer and decoder of the tokenizer file. Unicode
// compatibility composition then canonical decomposition (NFKC+NFD, which is NFKD:
// sugarme's NFKD step returns nil for input that is already NFKD) so that
// ligatures, full-width forms and accented letters reduce to base letters plus
// marks, then BERT's cleaning, lower-casing and accent stripping. Words are split
// on whitespace and punctuation, each punctuation mark its own word.
const (
	normalizerJSON   = `{"type":"Sequence","normalizers":[{"type":"NFKC"},{"type":"NFD"},{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":true,"lowercase":true}]}`
	preTokenizerJSON = `{"type":"BertPreTokenizer"}`
	decoderJSON      = `{"type":"WordPiece","prefix":"##","cleanup":true}`
)

// Build trains a tokenizer on lines and returns its tokenizer.json.
func Build(lines []string, opts Options) ([]byte, Stats, error) {
	if opts.VocabSize <= len(specials) {
		return nil, Stats{}, fmt.Errorf("vocab size %d too small", opts.VocabSize)
	}
	if opts.MinFreq < 1 {
		opts.MinFreq = 1
	}
	p, err := newPipeline()
	if err != nil {
		return nil, Stats{}, err
	}
	counts, err := p.countWords(lines)
	if err != nil {
		return nil, Stats{}, err
	}
	base, err := p.baseAlphabet()
	if err != nil {
		return nil, Stats{}, err
	}
	tr := newTrainer(counts, base)
	if len(tr.tokens) > opts.VocabSize {
		return nil, Stats{}, fmt.Errorf("vocab size %d is smaller than the special tokens and the alphabet (%d)", opts.VocabSize, len(tr.tokens))
	}
	merges := tr.train(opts)
	data := tr.marshal()
	if err := verify(data, counts); err != nil {
		return nil, Stats{}, fmt.Errorf("verify built tokenizer: %w", err)
	}
	return data, Stats{Words: len(counts), VocabSize: len(tr.tokens), Merges: merges}, nil
}

// pipeline is the normalizer and pre-tokenizer of the file being built, made by
// sugarme from the same JSON.
type pipeline struct {
	norm normalizer.Normalizer
	pre  tokenizer.PreTokenizer
}

func newPipeline() (*pipeline, error) {
	var nc, pc map[string]any
	if err := json.Unmarshal([]byte(normalizerJSON), &nc); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(preTokenizerJSON), &pc); err != nil {
		return nil, err
	}
	norm, err := pretrained.CreateNormalizer(nc)
	if err != nil {
		return nil, err
	}
	pre, err := pretrained.CreatePreTokenizer(pc)
	if err != nil {
		return nil, err
	}
	return &pipeline{norm: norm, pre: pre}, nil
}

// words normalizes and pre-tokenizes line.
func (p *pipeline) words(line string) ([]string, error) {
	ns, err := p.norm.Normalize(normalizer.NewNormalizedFrom(prepareText(line)))
	if err != nil {
		return nil, fmt.Errorf("normalize %q: %w", line, err)
	}
	pts, err := p.pre.PreTokenize(tokenizer.NewPreTokenizedStringFromNS(ns))
	if err != nil {
		return nil, fmt.Errorf("pre-tokenize %q: %w", line, err)
	}
	var words []string
	for _, w := range pts.GetSplits(normalizer.NormalizedTarget, tokenizer.Byte) {
		if w.Value != "" {
			words = append(words, w.Value)
		}
	}
	return words, nil
}

// countWords counts the words of lines.
func (p *pipeline) countWords(lines []string) (map[string]int, error) {
	counts := make(map[string]int)
	for _, l := range lines {
		words, err := p.words(l)
		if err != nil {
			return nil, err
		}
		for _, w := range words {
			counts[w]++
		}
	}
	return counts, nil
}

// baseAlphabet is what printable ASCII, Latin-1, Latin Extended-A, general
// punctuation (dashes, typographic quotes, bullets), currency and letterlike symbols
// normalize to. They are in the vocabulary whether the corpus has them or not, so
// that a word made of them splits into pieces instead of falling back to [UNK]
// (German, French, Polish or Nordic names and addresses, text pasted from mail).
func (p *pipeline) baseAlphabet() ([]rune, error) {
	var sb strings.Builder
	for _, rg := range [][2]rune{{0x21, 0x7e}, {0xa1, 0x17f}, {0x2010, 0x2027}, {0x2030, 0x205e}, {0x20a0, 0x20c0}, {0x2100, 0x214f}} {
		for r := rg[0]; r <= rg[1]; r++ {
			sb.WriteRune(r)
			sb.WriteByte(' ')
		}
	}
	words, err := p.words(sb.String())
	if err != nil {
		return nil, err
	}
	var alpha []rune
	for _, w := range words {
		alpha = append(alpha, []rune(w)...)
	}
	return alpha, nil
}

// prepareText is features.prepareText, which runs before sugarme's normalizer on
// every text: valid UTF-8, NFKC, lower case. Both steps are in the file's normalizer
// too, so the result is the same, but sugarme v0.3.0 misaligns or panics when NFKC
// or lower-casing changes a character's length inside its alignment-tracking
// NormalizedString, and does not when the text is already in that form.
func prepareText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, " ")
	}
	return strings.ToLower(norm.NFKC.String(s))
}

// trainer learns a WordPiece vocabulary the way Hugging Face's WordPieceTrainer does:
// start from single characters (the first of a word bare, the others "##"-prefixed)
// and repeatedly merge the most frequent adjacent pair into a new token. Ties go to
// the lexicographically smallest pair of token strings, so the result does not
// depend on map order.
type trainer struct {
	tokens []string         // vocabulary in id order
	ids    map[string]int32 // token → id
	words  []word           // distinct corpus words in byte order
}

type word struct {
	syms  []int32
	count int
}

type pair struct{ a, b int32 }

func newTrainer(counts map[string]int, base []rune) *trainer {
	t := &trainer{ids: make(map[string]int32)}
	for _, s := range specials {
		t.add(s)
	}
	// The alphabet: the base characters and every character of the corpus. Each
	// appears bare and, unless the pre-tokenizer always isolates it, "##"-prefixed.
	alpha := make(map[rune]bool)
	for _, r := range base {
		alpha[r] = true
	}
	for w := range counts {
		for _, r := range w {
			alpha[r] = true
		}
	}
	chars := make([]rune, 0, len(alpha))
	for r := range alpha {
		chars = append(chars, r)
	}
	slices.Sort(chars)
	for _, r := range chars {
		t.add(string(r))
	}
	for _, r := range chars {
		if !normalizer.IsBertPunctuation(r) {
			t.add(subwordPrefix + string(r))
		}
	}
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	slices.Sort(keys)
	for _, w := range keys {
		var syms []int32
		for i, r := range w {
			s := string(r)
			if i > 0 {
				s = subwordPrefix + s
			}
			syms = append(syms, t.ids[s])
		}
		t.words = append(t.words, word{syms: syms, count: counts[w]})
	}
	return t
}

func (t *trainer) add(tok string) int32 {
	if id, ok := t.ids[tok]; ok {
		return id
	}
	id := int32(len(t.tokens))
	t.tokens = append(t.tokens, tok)
	t.ids[tok] = id
	return id
}

// train merges pairs until the vocabulary is full or no pair is frequent enough,
// and returns the number of merges.
func (t *trainer) train(opts Options) int {
	freq := make(map[pair]int)
	merges := 0
	for len(t.tokens) < opts.VocabSize {
		clear(freq)
		for _, w := range t.words {
			for i := 1; i < len(w.syms); i++ {
				freq[pair{w.syms[i-1], w.syms[i]}] += w.count
			}
		}
		best, bestN := pair{}, 0
		for p, n := range freq {
			if n > bestN || n == bestN && t.less(p, best) {
				best, bestN = p, n
			}
		}
		if bestN < opts.MinFreq {
			break
		}
		id := t.add(t.tokens[best.a] + strings.TrimPrefix(t.tokens[best.b], subwordPrefix))
		merges++
		for wi := range t.words {
			w := &t.words[wi]
			out := w.syms[:0]
			for i := 0; i < len(w.syms); i++ {
				if i+1 < len(w.syms) && w.syms[i] == best.a && w.syms[i+1] == best.b {
					out = append(out, id)
					i++
					continue
				}
				out = append(out, w.syms[i])
			}
			w.syms = out
		}
	}
	return merges
}

func (t *trainer) less(p, q pair) bool {
	if c := cmp.Compare(t.tokens[p.a], t.tokens[q.a]); c != 0 {
		return c < 0
	}
	return t.tokens[p.b] < t.tokens[q.b]
}

// marshal writes the tokenizer in the Hugging Face tokenizer.json layout, the
// vocabulary in id order, one entry per line, so that diffs stay readable.
func (t *trainer) marshal() []byte {
	var b bytes.Buffer
	str := func(s string) {
		enc, _ := json.Marshal(s) // a string always marshals
		b.Write(enc)
	}
	// No added_tokens: the special tokens live in the model vocabulary only.
	// Listed as added tokens, sugarme would cut them out of the raw text, so a note
	// that quotes "[PAD]" would put id 0 in the middle of an order's ids.
	b.WriteString("{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [],\n")
	fmt.Fprintf(&b, "  \"normalizer\": %s,\n  \"pre_tokenizer\": %s,\n  \"post_processor\": null,\n  \"decoder\": %s,\n",
		normalizerJSON, preTokenizerJSON, decoderJSON)
	b.WriteString("  \"model\": {\n    \"type\": \"WordPiece\",\n    \"unk_token\": ")
	str(unkToken)
	b.WriteString(",\n    \"continuing_subword_prefix\": ")
	str(subwordPrefix)
	fmt.Fprintf(&b, ",\n    \"max_input_chars_per_word\": %d,\n    \"vocab\": {\n", maxInputCharsPerWord)
	for id, tok := range t.tokens {
		b.WriteString("      ")
		str(tok)
		fmt.Fprintf(&b, ": %d", id)
		if id < len(t.tokens)-1 {
			b.WriteByte(',')
		}
		b.WriteByte('\n')
	}
	b.WriteString("    }\n  }\n}\n")
	return b.Bytes()
}

// verify loads data with sugarme's loader and checks the special token ids and that
// every corpus word tokenizes without [UNK].
func verify(data []byte, counts map[string]int) error {
	tk, err := pretrained.FromReader(bytes.NewReader(data))
	if err != nil {
		return err
	}
	for i, s := range specials {
		if id, ok := tk.TokenToId(s); !ok || id != i {
			return fmt.Errorf("special token %s has id %d (found %v), want %d", s, id, ok, i)
		}
	}
	unk, _ := tk.TokenToId(unkToken)
	words := make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.Sort(words)
	for _, w := range words {
		if len([]rune(w)) > maxInputCharsPerWord {
			continue
		}
		enc, err := tk.EncodeSingle(prepareText(w), false)
		if err != nil {
			return fmt.Errorf("encode %q: %w", w, err)
		}
		if slices.Contains(enc.Ids, unk) {
			return fmt.Errorf("corpus word %q encodes with [UNK]: %v", w, enc.Tokens)
		}
	}
	return nil
}
