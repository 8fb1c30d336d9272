package satchel_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/net/http2"

	satchel "github.com/satchel-oci/satchel/clients/go"
)

// announced is what a client tells its peer of its receive side when it
// connects: its SETTINGS and its connection window.
type announced struct {
	settings   map[http2.SettingID]uint32
	connWindow uint32
}

// announcedBy serves one connection on a Unix socket as a bare HTTP/2 peer,
// lets connect open a call on it, and returns what the client announced
// before its first HEADERS frame.
func announcedBy(t *testing.T, connect func(addr string)) announced {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "peer.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan announced, 1)
	go func() {
		a := announced{settings: map[http2.SettingID]uint32{}, connWindow: 65535}
		defer func() { got <- a }()
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		preface := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(c, preface); err != nil || !bytes.Equal(preface, []byte(http2.ClientPreface)) {
			return
		}
		fr := http2.NewFramer(c, c)
		if fr.WriteSettings() != nil {
			return
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					f.ForeachSetting(func(s http2.Setting) error { a.settings[s.ID] = s.Val; return nil })
					fr.WriteSettingsAck()
				}
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					a.connWindow += f.Increment
				}
			case *http2.HeadersFrame:
				return
			}
		}
	}()
	connect("unix://" + sock)
	return <-got
}

// Dial announces large fixed windows, per call and per connection, rather
// than HTTP/2's 64 KiB and grpc-go's BDP probing, which starts from 64 KiB.
func TestDialAnnouncesLargeWindows(t *testing.T) {
	a := announcedBy(t, func(addr string) {
		c, err := satchel.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c.ServerInfo(ctx) // fails when the peer hangs up; only the connection matters
	})
	if got := a.settings[http2.SettingInitialWindowSize]; got != satchel.StreamWindow {
		t.Errorf("SETTINGS_INITIAL_WINDOW_SIZE = %d, want %d", got, satchel.StreamWindow)
	}
	if a.connWindow != satchel.ConnWindow {
		t.Errorf("connection window = %d, want %d", a.connWindow, satchel.ConnWindow)
	}
}
