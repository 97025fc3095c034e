package actions

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"time"
)

// ScorePoint is one scoring moment of an order, kept for its timeline. The JSON
// tags are the form releases before scorePointV1 stored, which is still read.
type ScorePoint struct {
	At       time.Time          `json:"at"`
	Trigger  string             `json:"trigger"`
	Event    string             `json:"event,omitempty"`
	Risk     float64            `json:"risk"`
	Classes  map[string]float64 `json:"classes,omitempty"`
	Shadow   map[string]float64 `json:"shadow,omitempty"`
	Model    string             `json:"model"`
	Degraded bool               `json:"degraded,omitempty"`
}

// Score points are stored in a compact binary form: one is written for every
// scored row, and as JSON (about 460 bytes) they were the largest share of what
// Badger writes. The first byte says the form: scorePointV1, or '{' for the JSON
// of earlier releases. UnmarshalBinary reads both; every reader goes through it.
//
// scorePointV1 is, in this order (strings are uvarint-prefixed bytes, numbers the
// little-endian IEEE bits of a float32 when the value is one exactly, as the
// models' outputs are, else of a float64, as the flags say):
//
//	byte     scorePointV1
//	byte     flags (sp* below)
//	varint   At as Unix milliseconds (spMillis), or varint Unix seconds and uvarint nanoseconds
//	varint   At's zone offset in seconds east of UTC (the name is not kept, as in JSON)
//	byte     Trigger: 0 when the string follows, else its index in scoreTriggers
//	[string] Trigger
//	[string] Event, unless spEventIsTrigger (a timer's row has event "timer")
//	number   Risk
//	         Classes: with spAllClasses, one number per scoreClasses, in its order; else
//	         a uvarint bitmask of the scoreClasses present and their numbers in order,
//	         then a uvarint count of other labels, each string and number, by label
//	uvarint  count of Shadow entries, each model and number, by key
//	model    Model
//
// A model ("name@version") is a byte, 0 when the string follows, else the index
// in scoreModels of its name, and the string of the version.
//
// An empty map is stored as an absent one and read back nil, as with omitempty.
const scorePointV1 = 1

// Flags of a scorePointV1 point.
const (
	spDegraded       = 1 << iota // Degraded
	spMillis                     // At is a whole millisecond, stored as Unix milliseconds
	spEventIsTrigger             // Event equals Trigger and is not stored
	spRisk64                     // Risk is stored as a float64
	spClasses64                  // Classes values are stored as float64
	spShadow64                   // Shadow values are stored as float64
	spAllClasses                 // Classes holds exactly the scoreClasses
	spUnused                     // reserved: set in no point this version reads
)

// scoreClasses are the exception classes a scorePointV1 point stores without their
// names, in its order. It is part of the format: when features.ExceptionClasses
// changes, this stays as it is (labels outside it are stored by name) until a
// new version says otherwise.
var scoreClasses = [...]string{"none", "credit", "pricing", "inventory", "address", "edi_mapping", "carrier",
	"warehouse_capacity", "invoicing"}

// scoreTriggers are the triggers a scorePointV1 point stores as one byte; 0 means
// the string follows. They are the pipeline's TriggerEvent and TriggerTimer.
var scoreTriggers = [...]string{1: "event", 2: "timer"}

// scoreModels are the model names a scorePointV1 point stores as one byte: the
// risk model's and the pipeline's rules fallback. Index 0 means the whole
// "name@version" follows.
var scoreModels = [...]string{1: "cutoff_risk", 2: "rules_fallback"}

// Bounds of what a score point holds: what JSON's RFC 3339 times can say.
const (
	maxZoneOffset = 24*60*60 - 1
	minUnixSecond = -62167219200 - 24*60*60 // 0000-01-01 in UTC, less a day of zone offset
	maxUnixSecond = 253402300799 + 24*60*60 // 9999-12-31T23:59:59 in UTC, plus a day
)

// Bounds of the strings and maps of a score point: far above what the pipeline
// writes (an event id is at most 128 bytes, a model "name@version" and a class
// label a few dozen, a model has a few classes and at most one shadow), so that a
// point stays small whatever a model bundle declares.
const (
	maxScoreString  = 512 // Trigger, Event, Model, a class label, a shadow's model
	maxScoreClasses = 64
	maxScoreShadows = 16
)

// checkBounds checks p's strings and maps against the bounds above; model is the
// length of the model reference that will be stored.
func (p *ScorePoint) checkBounds(model int) error {
	for _, f := range [...]struct {
		name string
		n    int
	}{{"trigger", len(p.Trigger)}, {"event", len(p.Event)}, {"model", model}} {
		if f.n > maxScoreString {
			return fmt.Errorf("%w: score point field %s: string of %d bytes, limit %d", ErrBadRecord, f.name, f.n, maxScoreString)
		}
	}
	for _, m := range [...]struct {
		name string
		m    map[string]float64
		max  int
	}{{"classes", p.Classes, maxScoreClasses}, {"shadow", p.Shadow, maxScoreShadows}} {
		if len(m.m) > m.max {
			return fmt.Errorf("%w: score point field %s: %d entries, limit %d", ErrBadRecord, m.name, len(m.m), m.max)
		}
		for k := range m.m {
			if len(k) > maxScoreString {
				return fmt.Errorf("%w: score point field %s: key of %d bytes, limit %d", ErrBadRecord, m.name, len(k), maxScoreString)
			}
		}
	}
	return nil
}

// AppendBinary appends the binary form of p to b. It fails, with an error that
// wraps ErrBadRecord and names the field, for what the JSON form could not hold
// either (a number that is NaN or infinite, a year outside 0 to 9999 or a zone
// offset of a day or more) and for a string or map over the bounds above.
func (p *ScorePoint) AppendBinary(b []byte) ([]byte, error) { return p.appendBinary(b, nil) }

// MarshalBinary returns the binary form of p, as AppendBinary.
func (p *ScorePoint) MarshalBinary() ([]byte, error) { return p.appendBinary(make([]byte, 0, 96), nil) }

// appendBinary is AppendBinary with, when ref is not nil, ref's "name@version"
// written as the model instead of p.Model, sparing the concatenation.
func (p *ScorePoint) appendBinary(b []byte, ref *ModelRef) ([]byte, error) {
	if err := checkScoreTime(p.At); err != nil {
		return b, fmt.Errorf("%w: score point field at: %w", ErrBadRecord, err)
	}
	model := len(p.Model)
	if ref != nil {
		model = len(ref.Name) + 1 + len(ref.Version)
	}
	if err := p.checkBounds(model); err != nil {
		return b, err
	}
	b0 := len(b)
	e := scoreEncoder{b: append(b, scorePointV1, 0)} // the flags are known at the end
	if p.Degraded {
		e.flags |= spDegraded
	}
	e.time(p.At)
	e.trigger(p.Trigger, p.Event)
	if e.number(p.Risk, spRisk64) {
		e.b = appendScoreNumber(e.b, p.Risk, e.flags&spRisk64 != 0)
	} else {
		e.notFinite("risk", "", p.Risk)
	}
	e.classes(p.Classes)
	e.shadow(p.Shadow)
	if ref != nil {
		e.modelRef(ref)
	} else {
		e.model(p.Model)
	}
	if e.err != nil {
		return b[:b0], e.err
	}
	e.b[b0+1] = e.flags
	return e.b, nil
}

// scoreEncoder appends a scorePointV1 point and collects its flags. The first
// error (a number that is NaN or infinite) sticks.
type scoreEncoder struct {
	b     []byte
	flags byte
	err   error
}

func (e *scoreEncoder) notFinite(what, key string, v float64) {
	if e.err == nil {
		if key != "" {
			what += "[" + strconv.Quote(key) + "]"
		}
		e.err = fmt.Errorf("%w: score point field %s: %v is not a finite number", ErrBadRecord, what, v)
	}
}

// number reports whether v is finite and, when it needs a float64 to be kept
// exactly, sets the flag that says the group it belongs to is stored so.
func (e *scoreEncoder) number(v float64, wide byte) bool {
	w, ok := scoreNumber(v)
	if w {
		e.flags |= wide
	}
	return ok
}

func (e *scoreEncoder) str(s string) {
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *scoreEncoder) time(t time.Time) {
	if t.Nanosecond()%1e6 == 0 {
		e.flags |= spMillis
		e.b = binary.AppendVarint(e.b, t.UnixMilli())
	} else {
		e.b = binary.AppendVarint(e.b, t.Unix())
		e.b = binary.AppendUvarint(e.b, uint64(t.Nanosecond()))
	}
	_, offset := t.Zone()
	e.b = binary.AppendVarint(e.b, int64(offset))
}

func (e *scoreEncoder) trigger(trigger, event string) {
	i := max(0, slices.Index(scoreTriggers[:], trigger))
	e.b = append(e.b, byte(i))
	if i == 0 {
		e.str(trigger)
	}
	if event == trigger {
		e.flags |= spEventIsTrigger
	} else {
		e.str(event)
	}
}

// classes writes the known classes by position, any other by name.
func (e *scoreEncoder) classes(m map[string]float64) {
	var known [len(scoreClasses)]float64
	var mask uint64
	for i, c := range scoreClasses {
		if v, ok := m[c]; ok {
			mask |= 1 << i
			known[i] = v
			if !e.number(v, spClasses64) {
				e.notFinite("classes", c, v)
			}
		}
	}
	var buf [4]entry[float64]
	others := buf[:0]
	if len(m) > bits.OnesCount64(mask) {
		for c, v := range m {
			if slices.Index(scoreClasses[:], c) < 0 {
				others = append(others, entry[float64]{c, v})
				if !e.number(v, spClasses64) {
					e.notFinite("classes", c, v)
				}
			}
		}
		sortEntries(others)
	}
	wide := e.flags&spClasses64 != 0
	if len(others) == 0 && mask == 1<<len(scoreClasses)-1 {
		e.flags |= spAllClasses
		for _, v := range known {
			e.b = appendScoreNumber(e.b, v, wide)
		}
		return
	}
	e.b = binary.AppendUvarint(e.b, mask)
	for i, v := range known {
		if mask>>i&1 != 0 {
			e.b = appendScoreNumber(e.b, v, wide)
		}
	}
	e.b = binary.AppendUvarint(e.b, uint64(len(others)))
	for _, kv := range others {
		e.str(kv.k)
		e.b = appendScoreNumber(e.b, kv.v, wide)
	}
}

// shadow writes the shadow scores by key.
func (e *scoreEncoder) shadow(m map[string]float64) {
	var buf [4]entry[float64]
	kvs := sortedEntries(buf[:0], m)
	for _, kv := range kvs {
		if !e.number(kv.v, spShadow64) {
			e.notFinite("shadow", kv.k, kv.v)
		}
	}
	wide := e.flags&spShadow64 != 0
	e.b = binary.AppendUvarint(e.b, uint64(len(kvs)))
	for _, kv := range kvs {
		e.model(kv.k)
		e.b = appendScoreNumber(e.b, kv.v, wide)
	}
}

// model writes a model reference, "name@version": the index of its name in
// scoreModels and its version, or 0 and the whole string.
func (e *scoreEncoder) model(ref string) {
	for i, name := range scoreModels {
		if i > 0 && len(ref) > len(name) && ref[len(name)] == '@' && ref[:len(name)] == name {
			e.b = append(e.b, byte(i))
			e.str(ref[len(name)+1:])
			return
		}
	}
	e.b = append(e.b, 0)
	e.str(ref)
}

// modelRef writes ref as model writes ref.Name + "@" + ref.Version.
func (e *scoreEncoder) modelRef(ref *ModelRef) {
	if i := slices.Index(scoreModels[:], ref.Name); i > 0 {
		e.b = append(e.b, byte(i))
		e.str(ref.Version)
		return
	}
	e.b = append(e.b, 0)
	e.b = binary.AppendUvarint(e.b, uint64(len(ref.Name)+1+len(ref.Version)))
	e.b = append(e.b, ref.Name...)
	e.b = append(e.b, '@')
	e.b = append(e.b, ref.Version...)
}

// UnmarshalBinary sets p to the score point stored in data, in either form: the
// binary one of AppendBinary, or the JSON earlier releases stored. The zone of At
// is a fixed zone with the stored offset (UTC for offset 0). A damaged point is an
// error that wraps ErrBadScorePoint.
func (p *ScorePoint) UnmarshalBinary(data []byte) error {
	*p = ScorePoint{}
	if len(data) == 0 {
		return fmt.Errorf("%w: empty", ErrBadScorePoint)
	}
	switch data[0] {
	case scorePointV1:
		return p.decodeV1(data[1:])
	case '{':
		err := json.Unmarshal(data, p)
		if err == nil {
			err = p.checkBounds(len(p.Model))
		}
		if err == nil {
			// encoding/json takes a zone offset of 24:00 or more that no
			// form can store again: refused here, not at the next write.
			err = checkScoreTime(p.At)
		}
		if err != nil {
			*p = ScorePoint{}
			return fmt.Errorf("%w: %w", ErrBadScorePoint, err)
		}
		return nil
	}
	return fmt.Errorf("%w: unknown form 0x%02x", ErrBadScorePoint, data[0])
}

// decodeV1 reads a scorePointV1 point, after its version byte.
func (p *ScorePoint) decodeV1(data []byte) error {
	d := scoreDecoder{b: data}
	flags := d.byte()
	if flags&spUnused != 0 {
		d.fail("unknown flags 0x%02x", flags)
	}
	p.Degraded = flags&spDegraded != 0
	p.At = d.time(flags&spMillis != 0)
	p.Trigger, p.Event = d.trigger(flags&spEventIsTrigger != 0)
	p.Risk = d.number("risk", "", flags&spRisk64 != 0)
	p.Classes = d.classes(flags&spAllClasses != 0, flags&spClasses64 != 0)
	p.Shadow = d.shadow(flags&spShadow64 != 0)
	p.Model = d.model()
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the point", len(d.b))
	}
	if d.err == nil {
		if err := p.checkBounds(len(p.Model)); err != nil {
			d.fail("%v", err)
		}
	}
	if d.err != nil {
		*p = ScorePoint{}
		return d.err
	}
	return nil
}

// scoreDecoder reads a scorePointV1 point; the first error sticks and zero values
// follow it.
type scoreDecoder struct {
	b   []byte
	n   int // bytes read
	err error
}

func (d *scoreDecoder) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: at byte %d: %s", ErrBadScorePoint, 1+d.n, fmt.Sprintf(format, a...))
	}
	d.b = nil
}

func (d *scoreDecoder) skip(n int) {
	d.b = d.b[n:]
	d.n += n
}

func (d *scoreDecoder) byte() byte {
	if len(d.b) < 1 {
		d.fail("ends early")
		return 0
	}
	v := d.b[0]
	d.skip(1)
	return v
}

func (d *scoreDecoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }
func (d *scoreDecoder) varint() int64   { return readVarint(d, binary.Varint) }

// readVarint reads one varint with read (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](d *scoreDecoder, read func([]byte) (T, int)) T {
	v, n := read(d.b)
	if n <= 0 {
		d.fail("ends early or bad varint")
		return 0
	}
	d.skip(n)
	return v
}

// count reads a number of entries that fit in what is left: a length byte and a
// number each at least.
func (d *scoreDecoder) count(wide bool) int {
	n := d.uvarint()
	if size := uint64(1 + numberSize(wide)); n > uint64(len(d.b))/size {
		d.fail("count %d out of range", n)
		return 0
	}
	return int(n)
}

func (d *scoreDecoder) str() string {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("string of %d bytes ends early", n)
		return ""
	}
	s := string(d.b[:n])
	d.skip(int(n))
	return s
}

func (d *scoreDecoder) time(millis bool) time.Time {
	var sec, nsec int64
	if millis {
		ms := d.varint()
		sec, nsec = ms/1e3, ms%1e3*1e6
		if nsec < 0 {
			sec, nsec = sec-1, nsec+1e9
		}
	} else {
		sec, nsec = d.varint(), int64(d.uvarint())
	}
	offset := d.varint()
	switch {
	case d.err != nil:
		return time.Time{}
	case sec < minUnixSecond || sec > maxUnixSecond || nsec < 0 || nsec >= 1e9:
		d.fail("time %d s %d ns out of range", sec, nsec)
		return time.Time{}
	case offset < -maxZoneOffset || offset > maxZoneOffset:
		d.fail("zone offset %d s out of range", offset)
		return time.Time{}
	}
	t := time.Unix(sec, nsec).UTC()
	if offset != 0 {
		t = t.In(time.FixedZone("", int(offset)))
	}
	if err := checkScoreTime(t); err != nil {
		d.fail("%v", err)
	}
	return t
}

func (d *scoreDecoder) trigger(eventIsTrigger bool) (trigger, event string) {
	switch i := d.byte(); {
	case i == 0:
		trigger = d.str()
	case int(i) < len(scoreTriggers):
		trigger = scoreTriggers[i]
	default:
		d.fail("unknown trigger %d", i)
	}
	if eventIsTrigger {
		return trigger, trigger
	}
	return trigger, d.str()
}

// classes reads the classes as scoreEncoder.classes wrote them; none is nil.
func (d *scoreDecoder) classes(all, wide bool) map[string]float64 {
	mask := uint64(1)<<len(scoreClasses) - 1
	if !all {
		if mask = d.uvarint(); mask>>len(scoreClasses) != 0 {
			d.fail("unknown classes in mask 0x%x", mask)
			return nil
		}
	}
	var m map[string]float64
	if mask != 0 {
		m = make(map[string]float64, bits.OnesCount64(mask))
	}
	for i, c := range scoreClasses {
		if mask>>i&1 != 0 {
			m[c] = d.number("class", c, wide)
		}
	}
	if all {
		return m
	}
	n := d.count(wide)
	for range n {
		c := d.str()
		if slices.Contains(scoreClasses[:], c) {
			d.fail("class %q stored by name", c)
		} else if _, dup := m[c]; dup {
			d.fail("class %q stored twice", c)
		}
		if m == nil {
			m = make(map[string]float64, n)
		}
		m[c] = d.number("class", c, wide)
	}
	return m
}

// shadow reads the shadow scores; none is nil.
func (d *scoreDecoder) shadow(wide bool) map[string]float64 {
	n := d.count(wide)
	if n == 0 {
		return nil
	}
	m := make(map[string]float64, n)
	for range n {
		k := d.model()
		if _, dup := m[k]; dup {
			d.fail("shadow %q stored twice", k)
		}
		m[k] = d.number("shadow", k, wide)
	}
	return m
}

// model reads a model reference as scoreEncoder.model wrote it.
func (d *scoreDecoder) model() string {
	i := d.byte()
	switch {
	case i == 0:
		return d.str()
	case int(i) < len(scoreModels):
		return scoreModels[i] + "@" + d.str()
	}
	d.fail("unknown model name %d", i)
	return ""
}

func (d *scoreDecoder) number(what, key string, wide bool) float64 {
	size := numberSize(wide)
	if len(d.b) < size {
		d.fail("ends early")
		return 0
	}
	var v float64
	if wide {
		v = math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	} else {
		v = float64(math.Float32frombits(binary.LittleEndian.Uint32(d.b)))
	}
	if _, ok := scoreNumber(v); !ok {
		if key != "" {
			what += " " + strconv.Quote(key)
		}
		d.fail("%s is %v", what, v)
		return 0
	}
	d.skip(size)
	return v
}

func numberSize(wide bool) int {
	if wide {
		return 8
	}
	return 4
}

func appendScoreNumber(b []byte, v float64, wide bool) []byte {
	if wide {
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
}

// scoreNumber reports whether v needs a float64 to be kept exactly, and whether it
// is finite: NaN and the infinities are not stored.
func scoreNumber(v float64) (wide, finite bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false, false
	}
	return float64(float32(v)) != v, true
}

// checkScoreTime refuses the times JSON's RFC 3339 cannot say, as
// time.Time.MarshalJSON does.
func checkScoreTime(t time.Time) error {
	if y := t.Year(); y < 0 || y > 9999 {
		return fmt.Errorf("time %s: year outside of range [0,9999]", t.Format(time.RFC3339Nano))
	}
	if _, off := t.Zone(); off < -maxZoneOffset || off > maxZoneOffset {
		return fmt.Errorf("time %s: zone offset of a day or more", t.Format(time.RFC3339Nano))
	}
	return nil
}
