package mapping

import (
	"strings"
	"testing"
)

// TestCarrierStatusTakesCode: a mapping may set carrier.status's data.code
// (NO_SHOW, PICKUP_LATE, ROLLED, TRANSIT_DELAY, TRANSIT), which names the
// cause of a failed pickup (README "Exceptions"), beside its text.
func TestCarrierStatusTakesCode(t *testing.T) {
	y := strings.Replace(entryYAML, "type: order.created", "type: carrier.status", 1)
	y = strings.Replace(y, "    warehouse: 'tables.sites[r.site]'\n    ship_cutoff: 'timestamp(r.timestamp) + duration(\"72h\")'\n    lines: 'int(r.lines)'\n",
		"    code: 'r.status_code'\n    text: 'r.message'\n", 1)
	if _, err := Compile([]byte(y)); err != nil {
		t.Fatalf("Compile of a carrier.status with data.code: %v", err)
	}
}
