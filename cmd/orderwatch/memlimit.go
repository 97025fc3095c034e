package main

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memoryLimit is the --memory-limit flag: the Go runtime's soft memory limit
// (GOMEMLIMIT). Without one the heap may grow to twice its live size before a
// collection, and most of the live size is Badger's table builders, whose
// number at a time varies with its flushes and compactions.
//
//	auto   GOMEMLIMIT when it is set; otherwise 90% of the container's (cgroup)
//	       memory limit when there is one; otherwise none
//	off    no limit, whatever GOMEMLIMIT says
//	SIZE   bytes, or a number with B, KiB, MiB, GiB or TiB, as GOMEMLIMIT takes
type memoryLimit struct {
	auto  bool
	bytes int64 // 0: off
}

// containerShare is the part of a container's memory limit auto gives the Go
// heap; the rest is for ONNX Runtime, stacks and the pages the kernel counts.
const containerShare = 0.9

func (m *memoryLimit) String() string {
	switch {
	case m == nil || m.auto:
		return "auto"
	case m.bytes == 0:
		return "off"
	default:
		return strconv.FormatInt(m.bytes, 10)
	}
}

func (m *memoryLimit) Set(s string) error {
	switch s {
	case "auto":
		*m = memoryLimit{auto: true}
		return nil
	case "off":
		*m = memoryLimit{}
		return nil
	}
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*m = memoryLimit{bytes: n}
	return nil
}

// parseByteSize reads a positive size the way GOMEMLIMIT does: a number of bytes
// with an optional unit, B, KiB, MiB, GiB or TiB.
func parseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		shift  uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}, {"B", 0}}
	num, shift := s, uint(0)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, shift = strings.TrimSuffix(s, u.suffix), u.shift
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("%q is not a size: want auto, off, or a positive number of bytes with an optional unit (B, KiB, MiB, GiB, TiB), such as 768MiB", s)
	}
	return n << shift, nil
}

// currentMemoryLimit is the runtime's soft memory limit in bytes, 0 for none.
func currentMemoryLimit() int64 {
	n := debug.SetMemoryLimit(-1)
	if n == math.MaxInt64 {
		return 0
	}
	return n
}

// apply sets the runtime's memory limit as the flag says and logs where it came
// from. It returns the limit in force, or 0 for none.
func (m memoryLimit) apply(log *slog.Logger) int64 {
	if !m.auto {
		if m.bytes == 0 {
			debug.SetMemoryLimit(math.MaxInt64)
			log.Info("memory limit off: the Go heap may grow to twice its live size")
			return 0
		}
		debug.SetMemoryLimit(m.bytes)
		log.Info("memory limit set", "bytes", m.bytes, "from", "--memory-limit")
		return m.bytes
	}
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		cur := currentMemoryLimit()
		log.Info("memory limit set", "bytes", cur, "from", "GOMEMLIMIT="+v)
		return cur
	}
	limit, err := memlimit.FromCgroup()
	if err != nil {
		if !errors.Is(err, memlimit.ErrNoLimit) && !errors.Is(err, memlimit.ErrNoCgroup) && !errors.Is(err, memlimit.ErrCgroupsNotSupported) {
			log.Warn("cannot read the container's memory limit: no Go memory limit set; set --memory-limit", "err", err)
			return 0
		}
		log.Info("no container memory limit: the Go heap is not capped; set --memory-limit to the memory you give orderwatch")
		return 0
	}
	n := int64(float64(min(limit, math.MaxInt64)) * containerShare)
	debug.SetMemoryLimit(n)
	log.Info("memory limit set", "bytes", n, "from", fmt.Sprintf("%.0f%% of the container's %d bytes", containerShare*100, limit))
	return n
}
