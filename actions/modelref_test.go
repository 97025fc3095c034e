package actions

import "testing"

func TestModelRefBinary(t *testing.T) {
	for _, in := range []ModelRef{{Name: "cutoff_risk", Version: "2026-05-01", SHA256: "9f86d081"}, {}} {
		b, err := in.AppendBinary([]byte("head"))
		if err != nil || string(b[:4]) != "head" {
			t.Fatalf("AppendBinary: %q, %v", b, err)
		}
		var out ModelRef
		rest, err := out.DecodeBinary(append(b[4:], "tail"...))
		if err != nil || out != in || string(rest) != "tail" {
			t.Errorf("read %+v, rest %q, err %v; want %+v, tail", out, rest, err, in)
		}
		for i := range len(b) - 4 {
			if _, err := new(ModelRef).DecodeBinary(b[4 : 4+i]); err == nil {
				t.Fatalf("reference cut at %d bytes decoded without error", i)
			}
		}
	}
}
