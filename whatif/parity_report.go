package whatif

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// markdown writes the parity section of the report: the baseline
// against the decisions recorded live.
func (p *Parity) markdown(b *strings.Builder) {
	fmt.Fprintf(b, "\n**Parity with the recorded run** (the baseline against the %d decisions recorded live in the window, same key): %d matched, %d only recorded, %d only replayed, %d differing; the baseline replayed %d",
		p.Recorded, p.Matched, p.OnlyRecorded, p.OnlyReplayed, p.Differing, p.Replayed)
	if p.AtOtherMoment > 0 {
		fmt.Fprintf(b, "; %d matched at another moment (median shift %s, replay minus live)", p.AtOtherMoment, signedMinutes(*p.MedianShift))
	}
	b.WriteString(".\n")
	if p.Mismatched() == 0 {
		return
	}
	var why []string
	for _, r := range slices.Sorted(maps.Keys(p.Reasons)) {
		why = append(why, fmt.Sprintf("%s %d", r, p.Reasons[r]))
	}
	fmt.Fprintf(b, "Reasons: %s.\n", strings.Join(why, ", "))
	for _, kind := range []string{ParityOnlyRecorded, ParityOnlyReplayed, ParityDiffering} {
		total := map[string]int{ParityOnlyRecorded: p.OnlyRecorded, ParityOnlyReplayed: p.OnlyReplayed, ParityDiffering: p.Differing}[kind]
		if total == 0 {
			continue
		}
		fmt.Fprintf(b, "\n## Parity: %s (first %d of %d)\n\n", parityTitles[kind], min(total, p.Listed), total)
		b.WriteString("| order | action | rule | episode | recorded | replayed | reasons |\n|---|---|---|---|---|---|---|\n")
		for i := range p.List {
			d := &p.List[i]
			if d.Kind != kind {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %s | %d | %s | %s | %s |\n", d.OrderID, d.Action, d.RuleID, d.Episode,
				paritySide(d.Recorded), paritySide(d.Replayed), strings.Join(d.Reasons, ", "))
		}
	}
}

var parityTitles = map[string]string{ParityOnlyRecorded: "only recorded", ParityOnlyReplayed: "only replayed", ParityDiffering: "differing"}

// paritySide says what one side decided and when, and with which model.
func paritySide(s *Side) string {
	if s == nil {
		return "—"
	}
	return fmt.Sprintf("%s at %s by %s", outcome(s), stamp(s.At), s.Model)
}
