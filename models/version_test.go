package models

import "testing"

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"0.1.0", true},
		{"10.20.30", true},
		{"1.0.0-rc.1", true},
		{"1.0.0-alpha-2.x", true},
		{"1.0", false},
		{"1.0.0.0", false},
		{"v1.0.0", false},
		{"01.0.0", false},
		{"1.0.0-", false},
		{"1.0.0-01", false},
		{"1.0.0-a..b", false},
		{"1.0.0+build.5", false},
		{"latest", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if _, ok := parseVersion(tt.in); ok != tt.ok {
				t.Errorf("parseVersion(%q) ok = %v, want %v", tt.in, ok, tt.ok)
			}
		})
	}
}

func TestVersionOrder(t *testing.T) {
	// Ascending, from semver.org's precedence examples and our own.
	order := []string{
		"0.2.0", "0.9.0", "0.10.0",
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta",
		"1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0",
		"1.2.9", "1.10.0", "2.0.0",
	}
	for i, a := range order {
		va, ok := parseVersion(a)
		if !ok {
			t.Fatalf("parseVersion(%q) failed", a)
		}
		for j, b := range order {
			vb, _ := parseVersion(b)
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := va.compare(vb); got != want {
				t.Errorf("compare(%s, %s) = %d, want %d", a, b, got, want)
			}
		}
	}
}
