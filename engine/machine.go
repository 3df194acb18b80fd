package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
)

// Machine is what the CPU rule (Rule) knows of one core: who made it, its
// caches, and two rates no instruction reports, which the rule takes from
// the vendor (their sources are in StreamGBs' and TransformChannels' docs).
type Machine struct {
	// Name is the CPU as CPUModel names it.
	Name string
	// Vendor is /proc/cpuinfo's vendor_id ("AuthenticAMD", "GenuineIntel";
	// "" on arm64 and where unknown); Family its cpu family.
	Vendor string
	Family int
	// L1D and L2 are a core's data caches in bytes (0: unknown; the rule
	// then assumes 1 MiB of L2, the smallest of our machines).
	L1D, L2 int
	// StreamGBs is how fast one core streams weights from memory, GB/s:
	// layers whose weights exceed the L2 read them from memory at every
	// image. Zen cores stream about 20 GB/s each (23 measured on Zen 4);
	// the Intel Xeon of ../shared/data/intel-xeon about 6: its split 7×7
	// 512→512 layer read 9.4 MB in 1.55 ms, its Winograd F(2,3) 16.8 MB in
	// 2.8–3.0 ms, both memory-bound. A server core's share of a mesh is
	// small; nothing in CPUID says so, hence the vendor.
	StreamGBs float64
	// TransformChannels is the Winograd transforms' cost in the rule's
	// model (winogradGain): the channel count at which a layer's transforms
	// cost as much as its products. On Zen 5 F(4,3) on 16 channels ran
	// 1.7× the direct kernel; on the Xeon 0.52× (82 against 157 GFLOP/s),
	// 1.17× on 32 channels and 1.7–1.9× on 64 and more.
	TransformChannels float64
}

// Machine classes the rule knows, by vendor: AMD (Zen), Intel (the Xeon
// fixture) and anything else (arm64, unknown x86), between the two.
const (
	zenStreamGBs, xeonStreamGBs, otherStreamGBs = 20, 6, 12
	zenTransform, xeonTransform, otherTransform = 20, 64, 32
)

// NewMachine is the Machine of a CPU described by its vendor, family and
// caches, with the vendor's rates.
func NewMachine(name, vendor string, family, l1d, l2 int) Machine {
	m := Machine{Name: name, Vendor: vendor, Family: family, L1D: l1d, L2: l2,
		StreamGBs: otherStreamGBs, TransformChannels: otherTransform}
	switch vendor {
	case "AuthenticAMD":
		m.StreamGBs, m.TransformChannels = zenStreamGBs, zenTransform
	case "GenuineIntel":
		m.StreamGBs, m.TransformChannels = xeonStreamGBs, xeonTransform
	}
	return m
}

var (
	machineOnce sync.Once
	machine     Machine
)

// ThisMachine is the machine this process runs on, read once: the CPU from
// /proc/cpuinfo, the caches from /sys/devices/system/cpu/cpu0/cache (Linux;
// elsewhere they are unknown).
func ThisMachine() Machine {
	machineOnce.Do(func() {
		info := cpuinfo()
		family, _ := strconv.Atoi(info["cpu family"])
		l1d, l2 := sysfsCaches("/sys/devices/system/cpu/cpu0/cache")
		machine = NewMachine(CPUModel(), info["vendor_id"], family, l1d, l2)
	})
	return machine
}

// sysfsCaches reads a core's L1 data and L2 sizes from Linux's cache
// directory (index*/level, type, size); 0 where absent.
func sysfsCaches(dir string) (l1d, l2 int) {
	entries, _ := filepath.Glob(filepath.Join(dir, "index*"))
	for _, e := range entries {
		read := func(f string) string {
			b, _ := os.ReadFile(filepath.Join(e, f))
			return strings.TrimSpace(string(b))
		}
		size := parseCacheSize(read("size"))
		switch level, typ := read("level"), read("type"); {
		case level == "1" && (typ == "Data" || typ == "Unified"):
			l1d = size
		case level == "2":
			l2 = size
		}
	}
	return l1d, l2
}

// parseCacheSize reads sysfs's "48K", "2048K", "32M"; 0 if it cannot.
func parseCacheSize(s string) int {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return n * mult
}

var (
	cpuOnce   sync.Once
	cpuFields map[string]string
)

// cpuinfo is the first processor's fields of /proc/cpuinfo (empty where
// there is no such file).
func cpuinfo() map[string]string {
	cpuOnce.Do(func() {
		cpuFields = map[string]string{}
		b, err := os.ReadFile("/proc/cpuinfo")
		if err != nil {
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k = strings.TrimSpace(k)
			if _, seen := cpuFields[k]; !seen {
				cpuFields[k] = strings.TrimSpace(v)
			}
		}
	})
	return cpuFields
}

// CPUModel names this machine's CPU: /proc/cpuinfo's model name with its
// family and model numbers (virtual machines often report "AMD EPYC" for
// several generations), or the architecture where there is no such file.
func CPUModel() string {
	f := cpuinfo()
	name := f["model name"]
	if name == "" {
		name = f["CPU part"] // arm64
	}
	if name == "" {
		return runtime.GOOS + "/" + runtime.GOARCH
	}
	if fam := f["cpu family"]; fam != "" {
		name += fmt.Sprintf(" (family %s model %s)", fam, f["model"])
	}
	return name
}
