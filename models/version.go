package models

import (
	"cmp"
	"strconv"
	"strings"
)

// version is a parsed semantic version MAJOR.MINOR.PATCH[-PRERELEASE]; build
// metadata is not allowed in a bundle version.
type version struct {
	core [3]uint64
	pre  []string
}

// parseVersion parses s as a semantic version (semver.org 2.0.0, without build
// metadata). It reports false when s is not one.
func parseVersion(s string) (version, bool) {
	var v version
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, ok := numericIdent(p)
		if !ok {
			return v, false
		}
		v.core[i] = n
	}
	if !hasPre {
		return v, true
	}
	v.pre = strings.Split(pre, ".")
	for _, id := range v.pre {
		if id == "" || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-") != "" {
			return v, false
		}
		if isDigits(id) {
			if _, ok := numericIdent(id); !ok {
				return v, false
			}
		}
	}
	return v, true
}

// compare returns -1, 0 or +1 as v sorts before, with or after w in semantic-version
// precedence.
func (v version) compare(w version) int {
	for i := range v.core {
		if v.core[i] != w.core[i] {
			return cmp.Compare(v.core[i], w.core[i])
		}
	}
	switch {
	case len(v.pre) == 0 && len(w.pre) == 0:
		return 0
	case len(v.pre) == 0:
		return 1 // a release sorts after its pre-releases
	case len(w.pre) == 0:
		return -1
	}
	for i := 0; i < len(v.pre) && i < len(w.pre); i++ {
		a, b := v.pre[i], w.pre[i]
		if a == b {
			continue
		}
		an, aNum := numericIdent(a)
		bn, bNum := numericIdent(b)
		switch {
		case aNum && bNum:
			return cmp.Compare(an, bn)
		case aNum:
			return -1 // numeric identifiers sort before alphanumeric ones
		case bNum:
			return 1
		}
		return strings.Compare(a, b)
	}
	return cmp.Compare(len(v.pre), len(w.pre))
}

// numericIdent parses a numeric identifier: digits without a leading zero.
func numericIdent(s string) (uint64, bool) {
	if !isDigits(s) || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
