package satchel

import (
	"encoding/json"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The title rules, the same in every Satchel client and in the daemon
// (clients/conformance/titles.json holds the shared test vectors).
const (
	// MaxTitleComponentBytes is the longest path component a title may
	// have, in bytes of UTF-8 (NAME_MAX of common Linux file systems).
	MaxTitleComponentBytes = 255
	// MaxTitleBytes is the longest title, in bytes of UTF-8 (PATH_MAX).
	MaxTitleBytes = 4096
)

// titleAnnotation is the layer annotation whose value a pull uses as the
// file name.
const titleAnnotation = "org.opencontainers.image.title"

// shownTitle quotes a title for an error message: escaped, and cut to 64
// bytes, since a title may be 4 KiB long and messages must stay short.
func shownTitle(title string) string {
	if len(title) <= 64 {
		return strconv.Quote(title)
	}
	return strconv.Quote(title[:64]) + "… (" + strconv.Itoa(len(title)) + " bytes)"
}

func refuseTitle(title, why string) error {
	return status.Errorf(codes.InvalidArgument, "satchel: refusing file name %s: %s", shownTitle(title), why)
}

// CheckTitle reports whether title is usable as a pulled (or pushed) file's
// name: a relative path of '/'-separated components, none of them empty,
// "." or "..", with no backslash, no control character (C0 or DEL), at
// most MaxTitleComponentBytes bytes per component and MaxTitleBytes in
// all. A refused title is a codes.InvalidArgument status error.
func CheckTitle(title string) error {
	switch {
	case title == "":
		return refuseTitle(title, "empty")
	case len(title) > MaxTitleBytes:
		return refuseTitle(title, "longer than "+strconv.Itoa(MaxTitleBytes)+" bytes")
	case strings.HasPrefix(title, "/"):
		return refuseTitle(title, "absolute")
	case strings.ContainsRune(title, '\\'):
		return refuseTitle(title, "contains a backslash")
	}
	for i := 0; i < len(title); i++ {
		if b := title[i]; b < 0x20 || b == 0x7f {
			return refuseTitle(title, "contains a control character")
		}
	}
	for _, part := range strings.Split(title, "/") {
		if part == "" || part == "." || part == ".." {
			return refuseTitle(title, "an empty, \".\" or \"..\" component")
		}
		if len(part) > MaxTitleComponentBytes {
			return refuseTitle(title, "a component longer than "+strconv.Itoa(MaxTitleComponentBytes)+" bytes")
		}
	}
	return nil
}

// CheckTitles checks the titles of one artifact, each with CheckTitle and
// against each other: no two layers may write one file, and no title may
// be a directory of another ("x" and "x/y"). A refusal is a
// codes.InvalidArgument status error.
func CheckTitles(titles []string) error {
	seen := make(map[string]bool, len(titles))
	for _, t := range titles {
		if err := CheckTitle(t); err != nil {
			return err
		}
		if seen[t] {
			return refuseTitle(t, "two layers are both named so")
		}
		seen[t] = true
	}
	for _, t := range titles {
		for i := strings.IndexByte(t, '/'); i >= 0; i = nextSlash(t, i) {
			if dir := t[:i]; seen[dir] {
				return status.Errorf(codes.InvalidArgument,
					"satchel: refusing file names %s and %s: the first would be a file and a directory",
					shownTitle(dir), shownTitle(t))
			}
		}
	}
	return nil
}

func nextSlash(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// manifestTitles returns the titles of the layers of a manifest's JSON, in
// layer order; layers without a title are not pulled and not listed.
func manifestTitles(content []byte) ([]string, error) {
	var m struct {
		Layers []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(content, &m); err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "satchel: the pulled manifest is not a JSON image manifest: %v", err)
	}
	var titles []string
	for _, l := range m.Layers {
		if t, ok := l.Annotations[titleAnnotation]; ok {
			titles = append(titles, t)
		}
	}
	return titles, nil
}
