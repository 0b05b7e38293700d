// Command sandboxprobe is the e2e tests' probe of a unit's sandbox: at
// start it tries what an application commonly needs, prints one line per
// attempt on stdout ("probe NAME: ok DETAIL" or "probe NAME: error
// ERROR"), which the journal keeps, sends READY=1 and waits for SIGTERM.
//
//	dial     a TCP connection to -dial (a database on localhost)
//	config   read -config, or $CREDENTIALS_DIRECTORY/config when set
//	         (a root-only config, handed over by LoadCredential=)
//	write    create a file in $STATE_DIRECTORY, else in -write-dir
package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

func main() {
	dial, config, writeDir := "127.0.0.1:8080", "/etc/probe.toml", "/var/lib/probe"
	for i := 1; i+1 < len(os.Args); i += 2 {
		switch os.Args[i] {
		case "-dial":
			dial = os.Args[i+1]
		case "-config":
			config = os.Args[i+1]
		case "-write-dir":
			writeDir = os.Args[i+1]
		}
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	report("dial", func() (string, error) {
		c, err := net.DialTimeout("tcp", dial, 5*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.RemoteAddr().String(), nil
	})
	report("config", func() (string, error) {
		path := config
		if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
			path = filepath.Join(dir, "config")
		}
		b, err := os.ReadFile(path)
		return strings.TrimSpace(string(b)), err
	})
	report("write", func() (string, error) {
		dir := writeDir
		if d := os.Getenv("STATE_DIRECTORY"); d != "" {
			dir = d
		}
		path := filepath.Join(dir, "probe")
		return path, os.WriteFile(path, []byte("ok\n"), 0o600)
	})

	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		fmt.Fprintln(os.Stderr, "sandboxprobe: READY=1:", err)
		os.Exit(1)
	}
	<-sigs
}

func report(name string, try func() (string, error)) {
	detail, err := try()
	if err != nil {
		fmt.Printf("probe %s: error %v\n", name, err)
		return
	}
	fmt.Printf("probe %s: ok %s\n", name, detail)
}
