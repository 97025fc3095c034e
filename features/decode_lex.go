package features

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The lexical layer of the event parser: JSON strings, numbers, literals and
// white space, skipping values of unknown fields, unescaping strings and parsing
// numbers, each exactly as encoding/json does.

// skipValue checks the syntax of the value at p.pos, in a container at depth, and
// moves past it.
func (p *eventParser) skipValue(depth int) error {
	switch c := p.peek(); {
	case c == '"':
		_, _, _, err := p.scanString()
		return err
	case c == '{' || c == '[':
		return p.skipContainer(depth + 1)
	case c == 't':
		return p.scanLiteral("true")
	case c == 'f':
		return p.scanLiteral("false")
	case c == 'n':
		return p.scanLiteral("null")
	case isNumberStart(c):
		return p.scanNumber()
	}
	return p.syntaxError("a value")
}

// skipContainer skips the object or array at p.pos, which opens nesting level
// depth.
func (p *eventParser) skipContainer(depth int) error {
	if depth > maxNestingDepth {
		return invalid(ReasonBadJSON, "offset %d: exceeded the maximum nesting depth %d", p.pos, maxNestingDepth)
	}
	closing := byte(']')
	if p.b[p.pos] == '{' {
		closing = '}'
	}
	p.pos++
	p.skipSpace()
	if p.peek() == closing {
		p.pos++
		return nil
	}
	for {
		if closing == '}' {
			if p.peek() != '"' {
				return p.syntaxError("an object key")
			}
			if _, _, _, err := p.scanString(); err != nil {
				return err
			}
			p.skipSpace()
			if p.peek() != ':' {
				return p.syntaxError("a colon after an object key")
			}
			p.pos++
			p.skipSpace()
		}
		if err := p.skipValue(depth); err != nil {
			return err
		}
		p.skipSpace()
		switch p.peek() {
		case ',':
			p.pos++
			p.skipSpace()
		case closing:
			p.pos++
			return nil
		default:
			if closing == '}' {
				return p.syntaxError("a comma or a closing brace after an object value")
			}
			return p.syntaxError("a comma or a closing bracket after an array element")
		}
	}
}

// scanString checks the string at p.pos (at its opening quote), moves past it and
// returns where its contents lie and whether they hold escapes.
func (p *eventParser) scanString() (start, end int, escaped bool, err error) {
	b := p.b
	start = p.pos + 1
	for i := start; i < len(b); {
		// Find the next quote, backslash or control character eight bytes at a
		// time, byte by byte in the last seven bytes of the input.
		if i+8 <= len(b) {
			m := stringSpecials(binary.LittleEndian.Uint64(b[i:]))
			if m == 0 {
				i += 8
				continue
			}
			i += bits.TrailingZeros64(m) / 8
		} else if !stringSpecial[b[i]] {
			i++
			continue
		}
		switch c := b[i]; {
		case c == '"':
			p.pos = i + 1
			return start, i, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 == len(b) {
				p.pos = len(b)
				return 0, 0, false, p.syntaxError("an escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				for j := i + 2; j < i+6; j++ {
					if j == len(b) || !isHex(b[j]) {
						p.pos = j
						return 0, 0, false, p.syntaxError("a hexadecimal digit of a \\u escape")
					}
				}
				i += 6
			default:
				p.pos = i + 1
				return 0, 0, false, p.syntaxError("an escape")
			}
		default: // c < 0x20
			p.pos = i
			return 0, 0, false, invalid(ReasonBadJSON, "offset %d: control character %#02x in a string", i, c)
		}
	}
	p.pos = len(b)
	return 0, 0, false, p.syntaxError("the end of a string")
}

// stringSpecials returns a mask whose lowest set bit is the high bit of the first
// of the eight bytes of x (little-endian) that is a quote, a backslash or a control
// character, or 0 if there is none. These are the "determine if a word has a zero
// byte" and "has a byte less than n" tricks of Bit Twiddling Hacks: a byte above
// the first match may be flagged falsely, by the borrow, never one below it.
func stringSpecials(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	quote, backslash := x^(ones*'"'), x^(ones*'\\')
	return ((quote-ones)&^quote | (backslash-ones)&^backslash | (x-ones*0x20)&^x) & highs
}

// stringSpecial marks the bytes that end a run of plain string contents: the quote,
// the backslash and the control characters.
var stringSpecial = [256]bool{
	'"': true, '\\': true,
	0x00: true, 0x01: true, 0x02: true, 0x03: true, 0x04: true, 0x05: true, 0x06: true, 0x07: true,
	0x08: true, 0x09: true, 0x0a: true, 0x0b: true, 0x0c: true, 0x0d: true, 0x0e: true, 0x0f: true,
	0x10: true, 0x11: true, 0x12: true, 0x13: true, 0x14: true, 0x15: true, 0x16: true, 0x17: true,
	0x18: true, 0x19: true, 0x1a: true, 0x1b: true, 0x1c: true, 0x1d: true, 0x1e: true, 0x1f: true,
}

// scanNumber checks the JSON number at p.pos and moves past it.
func (p *eventParser) scanNumber() error {
	b, i := p.b, p.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		p.pos = i
		return p.syntaxError("a digit")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || !isDigit(b[i]) {
			p.pos = i
			return p.syntaxError("a digit after the decimal point")
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || !isDigit(b[i]) {
			p.pos = i
			return p.syntaxError("a digit of an exponent")
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	p.pos = i
	return nil
}

// scanLiteral checks that the literal word (true, false, null) is at p.pos and moves
// past it.
func (p *eventParser) scanLiteral(word string) error {
	for i := 0; i < len(word); i++ {
		if p.pos == len(p.b) || p.b[p.pos] != word[i] {
			return p.syntaxError("the literal " + word)
		}
		p.pos++
	}
	return nil
}

func (p *eventParser) skipSpace() {
	if p.pos < len(p.b) && p.b[p.pos] > ' ' {
		return // the common case: no white space between tokens
	}
	p.skipSpaceSlow()
}

func (p *eventParser) skipSpaceSlow() {
	for p.pos < len(p.b) {
		switch p.b[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// peek returns the byte at p.pos, or 0 at the end of the input.
func (p *eventParser) peek() byte {
	if p.pos < len(p.b) {
		return p.b[p.pos]
	}
	return 0
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isNumberStart(c byte) bool { return c == '-' || isDigit(c) }

func isHex(c byte) bool {
	return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// parseInt parses a JSON number as strconv.ParseInt(s, 10, 64) and reports
// whether it is an integer that fits an int.
func parseInt(num []byte) (int, bool) {
	digits := num
	if num[0] == '-' {
		digits = num[1:]
	}
	if len(digits) > 18 { // might overflow: let strconv decide
		n, err := strconv.ParseInt(string(num), 10, 64)
		return int(n), err == nil && int64(int(n)) == n
	}
	var n int64
	for _, c := range digits {
		if !isDigit(c) {
			return 0, false // a fraction or an exponent
		}
		n = n*10 + int64(c-'0')
	}
	if num[0] == '-' {
		n = -n
	}
	return int(n), int64(int(n)) == n
}

// float64pow10 holds the powers of ten a float64 represents exactly.
var float64pow10 = [...]float64{
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
}

// parseFloat parses a JSON number as strconv.ParseFloat(s, 64) and reports whether
// it is in range. A mantissa below 2^53 times or divided by an exact power of ten
// is one correctly rounded operation, so equals strconv's result; anything else
// goes to strconv.
func parseFloat(num []byte) (float64, bool) {
	i, neg := 0, num[0] == '-'
	if neg {
		i = 1
	}
	var mant uint64
	digits, exp := 0, 0
	for ; i < len(num) && isDigit(num[i]); i++ {
		if mant == 0 && num[i] == '0' {
			continue
		}
		if digits++; digits > 19 {
			return parseFloatSlow(num)
		}
		mant = mant*10 + uint64(num[i]-'0')
	}
	if i < len(num) && num[i] == '.' {
		for i++; i < len(num) && isDigit(num[i]); i++ {
			exp--
			if mant == 0 && num[i] == '0' {
				continue
			}
			if digits++; digits > 19 {
				return parseFloatSlow(num)
			}
			mant = mant*10 + uint64(num[i]-'0')
		}
	}
	if i < len(num) { // e or E
		i++
		expNeg := num[i] == '-'
		if num[i] == '+' || num[i] == '-' {
			i++
		}
		e := 0
		for ; i < len(num); i++ {
			if e < 10000 {
				e = e*10 + int(num[i]-'0')
			}
		}
		if expNeg {
			e = -e
		}
		exp += e
	}
	if mant == 0 {
		if neg {
			return math.Copysign(0, -1), true
		}
		return 0, true
	}
	if mant>>53 != 0 || exp < -22 || exp > 22 {
		return parseFloatSlow(num)
	}
	x := float64(mant)
	if exp >= 0 {
		x *= float64pow10[exp]
	} else {
		x /= float64pow10[-exp]
	}
	if neg {
		x = -x
	}
	return x, true
}

func parseFloatSlow(num []byte) (float64, bool) {
	x, err := strconv.ParseFloat(string(num), 64)
	return x, err == nil
}

// appendUnquoted appends the contents of a JSON string, raw (without its quotes,
// syntax checked), unescaped as encoding/json unescapes.
func appendUnquoted(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			dst = append(dst, c)
			i++
			continue
		}
		var r rune
		r, i = unescape(raw, i)
		if r < utf8.RuneSelf {
			dst = append(dst, byte(r))
		} else {
			dst = utf8.AppendRune(dst, r)
		}
	}
	return dst
}

// writeUnquoted is appendUnquoted into a strings.Builder.
func writeUnquoted(sb *strings.Builder, raw []byte) {
	for i := 0; i < len(raw); {
		j := i
		for j < len(raw) && raw[j] != '\\' {
			j++
		}
		sb.Write(raw[i:j])
		if j == len(raw) {
			return
		}
		var r rune
		r, i = unescape(raw, j)
		sb.WriteRune(r)
	}
}

// unescape decodes the escape at raw[i] (a backslash) and returns the rune and the
// index after the escape. A \u escape of a surrogate takes the next \u escape with
// it when the two make a pair, and is U+FFFD otherwise.
func unescape(raw []byte, i int) (rune, int) {
	switch raw[i+1] {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r := hex4(raw[i+2 : i+6])
		i += 6
		if !utf16.IsSurrogate(r) {
			return r, i
		}
		if i+6 <= len(raw) && raw[i] == '\\' && raw[i+1] == 'u' {
			if pair := utf16.DecodeRune(r, hex4(raw[i+2:i+6])); pair != utf8.RuneError {
				return pair, i + 6
			}
		}
		return utf8.RuneError, i
	}
	return rune(raw[i+1]), i + 2 // " \ /
}

// hex4 decodes four hexadecimal digits (syntax checked).
func hex4(h []byte) rune {
	var r rune
	for _, c := range h[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}
