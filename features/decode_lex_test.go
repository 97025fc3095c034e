package features

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
	"testing"
)

// TestStringSpecials checks the word-at-a-time search against a byte loop on words
// made of plain bytes, specials and bytes just beside them.
func TestStringSpecials(t *testing.T) {
	alphabet := []byte{'"', '\\', 0x00, 0x1f, 0x20, 0x21, '!', '#', '[', ']', 'a', 0x7f, 0x80, 0xc3, 0xff}
	r := rand.New(rand.NewPCG(1, 2))
	var w [8]byte
	for range 200000 {
		for i := range w {
			w[i] = alphabet[r.IntN(len(alphabet))]
		}
		want := 8
		for i, c := range w {
			if stringSpecial[c] {
				want = i
				break
			}
		}
		got := 8
		if m := stringSpecials(binary.LittleEndian.Uint64(w[:])); m != 0 {
			got = bits.TrailingZeros64(m) / 8
		}
		if got != want {
			t.Fatalf("stringSpecials(%q): first special at %d, want %d", w, got, want)
		}
	}
}
