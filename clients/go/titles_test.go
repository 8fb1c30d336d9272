package satchel_test

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// titleVector is one entry of clients/conformance/titles.json: its title is
// Prefix + Title repeated Repeat times (default 1) + Suffix.
type titleVector struct {
	Prefix string `json:"prefix"`
	Title  string `json:"title"`
	Repeat int    `json:"repeat"`
	Suffix string `json:"suffix"`
	Why    string `json:"why"`
}

func (v titleVector) full() string {
	n := v.Repeat
	if n == 0 {
		n = 1
	}
	return v.Prefix + strings.Repeat(v.Title, n) + v.Suffix
}

type titleSet struct {
	Titles []string `json:"titles"`
	Why    string   `json:"why"`
}

type plantedLink struct {
	Path string `json:"path"`
	To   string `json:"to"`
}

type plantedVector struct {
	Name   string        `json:"name"`
	Dirs   []string      `json:"dirs"`
	Links  []plantedLink `json:"links"`
	Title  string        `json:"title"`
	Expect string        `json:"expect"`
}

type conformance struct {
	Limits struct {
		ComponentMaxBytes int `json:"component_max_bytes"`
		TotalMaxBytes     int `json:"total_max_bytes"`
	} `json:"limits"`
	Accept       []titleVector   `json:"accept"`
	Refuse       []titleVector   `json:"refuse"`
	Conflicts    []titleSet      `json:"conflicts"`
	Compatible   []titleSet      `json:"compatible"`
	PlantedLinks []plantedVector `json:"planted_links"`
}

// vectors reads the vectors every client and the daemon share.
func vectors(t *testing.T) conformance {
	t.Helper()
	var c conformance
	readConformance(t, "titles.json", &c)
	if len(c.Accept) == 0 || len(c.Refuse) == 0 || len(c.Conflicts) == 0 || len(c.Compatible) == 0 || len(c.PlantedLinks) == 0 {
		t.Fatalf("titles.json lacks a list: %+v", c)
	}
	return c
}

// caseName names a subtest after a vector's index and what it is about.
func caseName(i int, what string) string {
	if len(what) > 40 {
		what = what[:40]
	}
	return fmt.Sprintf("%02d %q", i, what)
}

func TestTitleLimitsMatchTheVectors(t *testing.T) {
	c := vectors(t)
	if c.Limits.ComponentMaxBytes != satchel.MaxTitleComponentBytes || c.Limits.TotalMaxBytes != satchel.MaxTitleBytes {
		t.Errorf("titles.json limits %+v, the client's %d and %d", c.Limits, satchel.MaxTitleComponentBytes, satchel.MaxTitleBytes)
	}
}

func TestCheckTitleAcceptsEveryAcceptVector(t *testing.T) {
	for i, v := range vectors(t).Accept {
		t.Run(caseName(i, v.full()), func(t *testing.T) {
			if err := satchel.CheckTitle(v.full()); err != nil {
				t.Errorf("CheckTitle refused it: %v", err)
			}
			if err := satchel.CheckTitles([]string{v.full()}); err != nil {
				t.Errorf("CheckTitles refused it: %v", err)
			}
		})
	}
}

func TestCheckTitleRefusesEveryRefuseVectorAsInvalidArgument(t *testing.T) {
	for i, v := range vectors(t).Refuse {
		t.Run(caseName(i, v.Why), func(t *testing.T) {
			err := satchel.CheckTitle(v.full())
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Fatalf("CheckTitle(%q): code %v (%v), want InvalidArgument", v.full(), code, err)
			}
			if n := len(status.Convert(err).Message()); n > 300 {
				t.Errorf("the message is %d bytes long", n)
			}
			if err := satchel.CheckTitles([]string{"ok.txt", v.full()}); status.Code(err) != codes.InvalidArgument {
				t.Errorf("CheckTitles with it: %v, want InvalidArgument", err)
			}
		})
	}
}

func TestCheckTitlesRefusesEveryConflictVector(t *testing.T) {
	for i, v := range vectors(t).Conflicts {
		t.Run(caseName(i, v.Why), func(t *testing.T) {
			for _, title := range v.Titles {
				if err := satchel.CheckTitle(title); err != nil {
					t.Fatalf("the vector's title %q is refused alone: %v", title, err)
				}
			}
			err := satchel.CheckTitles(v.Titles)
			if code := status.Code(err); code != codes.InvalidArgument {
				t.Errorf("CheckTitles(%q): code %v (%v), want InvalidArgument", v.Titles, code, err)
			}
		})
	}
}

func TestCheckTitlesAcceptsEveryCompatibleVector(t *testing.T) {
	for i, v := range vectors(t).Compatible {
		t.Run(caseName(i, v.Why), func(t *testing.T) {
			if err := satchel.CheckTitles(v.Titles); err != nil {
				t.Errorf("CheckTitles(%q): %v", v.Titles, err)
			}
		})
	}
}
