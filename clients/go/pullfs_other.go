//go:build !unix

package satchel

import (
	"os"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Pulls walk the output directory with openat(2) and O_NOFOLLOW, which
// only Unix systems have; elsewhere Pull refuses rather than follow links.

type outputDir struct{ path string }

type slot struct{ path string }

func errNoUnix() error {
	return status.Error(codes.Unimplemented, "satchel: Pull needs a Unix system (openat with O_NOFOLLOW)")
}

func openOutputDir(string) (*outputDir, error)           { return nil, errNoUnix() }
func (o *outputDir) close()                              {}
func (o *outputDir) walk(string) (*slot, error)          { return nil, errNoUnix() }
func (s *slot) createPartial() (*os.File, string, error) { return nil, "", errNoUnix() }
func (s *slot) commit(string) error                      { return errNoUnix() }
func (s *slot) removePartial(string)                     {}
func (s *slot) release(bool)                             {}
