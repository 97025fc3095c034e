package process

// labelOther is the label value that producer-derived values beyond the cap,
// too long or with odd characters, count under.
const labelOther = "other"

const (
	// maxWarehouseLabels caps the distinct warehouse label values.
	maxWarehouseLabels = 128
	// maxLabelBytes is the longest producer-derived label value kept as it is.
	maxLabelBytes = 64
)

// labelSet bounds the values of a label that come from producers (a
// warehouse id): each value is kept as it is while fewer than max are, if it
// is at most maxLabelBytes of printable ASCII; any other counts as labelOther.
// A value keeps its label once given, so gauges move between the same series.
// Not safe for concurrent use.
type labelSet struct {
	max  int
	kept map[string]bool
}

// label returns the label value v counts under.
func (s *labelSet) label(v string) string {
	if s.kept[v] {
		return v
	}
	if len(s.kept) >= s.max || !plainLabel(v) {
		return labelOther
	}
	s.kept[v] = true
	return v
}

// plainLabel reports whether v is short printable ASCII, and not labelOther.
func plainLabel(v string) bool {
	if v == "" || len(v) > maxLabelBytes || v == labelOther {
		return false
	}
	for i := range len(v) {
		if c := v[i]; c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
