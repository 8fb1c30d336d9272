//go:build !unix

package satchel

import (
	"io"
	"os"
	"time"

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

func openOutputDir(string) (*outputDir, error)                 { return nil, errNoUnix() }
func (o *outputDir) close()                                    {}
func (o *outputDir) walk(string) (*slot, error)                { return nil, errNoUnix() }
func (o *outputDir) walkParents(string) (*slot, error)         { return nil, errNoUnix() }
func (s *slot) createPartial(uint32) (*os.File, string, error) { return nil, "", errNoUnix() }
func (s *slot) reopenPartial(string) (*os.File, error)         { return nil, errNoUnix() }
func (s *slot) commit(string) error                            { return errNoUnix() }
func (s *slot) removePartial(string)                           {}
func (s *slot) release(bool)                                   {}

type treePlacement struct{ tree *outputDir }

func (o *outputDir) createTree(string) (*treePlacement, error) { return nil, errNoUnix() }
func (t *treePlacement) path() string                          { return "" }
func (t *treePlacement) commit() error                         { return errNoUnix() }
func (t *treePlacement) discard()                              {}
func (o *outputDir) mkdirs(string) error                       { return errNoUnix() }
func (o *outputDir) writeFile(string, uint32, time.Time, func(io.Writer) error) error {
	return errNoUnix()
}
func (o *outputDir) symlink(string, string) error  { return errNoUnix() }
func (o *outputDir) hardLink(string, string) error { return errNoUnix() }
