package comm100

import (
	"bufio"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// readZoneTable reads testdata/comm100-timezones.tsv: the Windows ids of
// Comm100's API introduction with their display names.
func readZoneTable(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("testdata/comm100-timezones.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		id, display, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("line %q: want id<TAB>display name", sc.Text())
		}
		out[id] = display
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryComm100ZoneResolves(t *testing.T) {
	table := readZoneTable(t)
	if len(table) != 128 {
		t.Fatalf("table has %d ids, want 128", len(table))
	}
	for id := range table {
		t.Run(id, func(t *testing.T) {
			z, ok := IANAZone(id)
			if !ok {
				t.Fatalf("IANAZone(%q): unknown", id)
			}
			if _, err := time.LoadLocation(z); err != nil {
				t.Fatalf("time.LoadLocation(%q) for %q: %v", z, id, err)
			}
			if _, err := Location(id); err != nil {
				t.Fatalf("Location(%q): %v", id, err)
			}
		})
	}
}

// Zones whose offset changed since Windows wrote the display name in the
// table; the mapping is right, the "(UTC+hh:mm)" is history.
var displayOffsetOutdated = map[string]string{
	"Morocco Standard Time":          "Africa/Casablanca is +01 outside Ramadan since 2018",
	"Jordan Standard Time":           "Asia/Amman is +03 all year since 2022",
	"Syria Standard Time":            "Asia/Damascus is +03 all year since 2022",
	"Volgograd Standard Time":        "Europe/Volgograd is +03 since 2020",
	"Greenland Standard Time":        "America/Nuuk is -02 since 2023",
	"Paraguay Standard Time":         "America/Asuncion is -03 all year since 2024",
	"Namibia Standard Time":          "Africa/Windhoek is +02 all year since 2017",
	"North Korea Standard Time":      "Asia/Pyongyang is back to +09 since 2018",
	"Turks and Caicos Standard Time": "America/Grand_Turk is back to -05 with DST since 2018",
}

var displayOffset = regexp.MustCompile(`^\(UTC(?:([+-])(\d\d):(\d\d))?\)`)

// TestZoneOffsetsMatchDisplayNames catches a wrong mapping: the zone's
// standard offset (the smaller of January's and July's) must be the one the
// display name gives.
func TestZoneOffsetsMatchDisplayNames(t *testing.T) {
	for id, display := range readZoneTable(t) {
		t.Run(id, func(t *testing.T) {
			m := displayOffset.FindStringSubmatch(display)
			if m == nil {
				t.Fatalf("display name %q has no (UTC±hh:mm)", display)
			}
			want := 0
			if m[1] != "" {
				h, _ := strconv.Atoi(m[2])
				mm, _ := strconv.Atoi(m[3])
				want = h*3600 + mm*60
				if m[1] == "-" {
					want = -want
				}
			}
			loc, err := Location(id)
			if err != nil {
				t.Fatal(err)
			}
			_, jan := time.Date(2025, 1, 15, 12, 0, 0, 0, loc).Zone()
			_, jul := time.Date(2025, 7, 15, 12, 0, 0, 0, loc).Zone()
			got := min(jan, jul)
			if why, ok := displayOffsetOutdated[id]; ok {
				if got == want {
					t.Errorf("listed as outdated (%s) but the offset matches %q; drop it from the list", why, display)
				}
				return
			}
			if got != want {
				t.Errorf("%s: standard offset %+ds, display %q says %+ds", loc, got, display, want)
			}
		})
	}
}

func TestLocation(t *testing.T) {
	tests := []struct {
		id, want string
		wantErr  bool
	}{
		{id: "China Standard Time", want: "Asia/Shanghai"},
		{id: "FLE Standard Time", want: "Europe/Kyiv"},
		{id: "pacific standard time", want: "America/Los_Angeles"},
		{id: "UTC", want: "Etc/UTC"},
		{id: "Europe/Berlin", want: "Europe/Berlin"},
		{id: "  Tokyo Standard Time ", want: "Asia/Tokyo"},
		{id: "", wantErr: true},
		{id: "Local", wantErr: true},
		{id: "Mars Standard Time", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			loc, err := Location(tt.id)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Location(%q) = %v, want an error", tt.id, loc)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if loc.String() != tt.want {
				t.Errorf("Location(%q) = %s, want %s", tt.id, loc, tt.want)
			}
		})
	}
}
