package jail

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The control protocol, on an AF_UNIX SOCK_SEQPACKET socketpair (the
// child's end is its fd 3). Every message is one datagram holding one
// ASCII line ending in '\n'; message boundaries come from the socket, so
// a reader takes one bounded datagram and never waits for "the rest".
//
//	parent → child  "spec <JSON wireSpec>"   the go-ahead, sent after OnStart
//	child → parent  "ready" | "fail <text>"  Enter finished or failed
//	child → parent  "vcpus <tid> <tid> ..."  once, TIDs in the child's pid ns
//	parent → child  "ok" | "error <text>"    OnVCPUThreads' verdict
//
// The child is the sandboxed side: the parent bounds, parses strictly and
// sanitises everything it reads from it, answers one thread report only,
// and maps TIDs only to threads of that very child.
const (
	maxSpecMsg  = 128 << 10 // below the default unix socket send buffer (212992)
	maxChildMsg = 16 << 10  // "vcpus " + 1024 TIDs of up to 7 digits
	maxReplyMsg = 2 << 10
	maxText     = 1 << 10 // of a fail or error text

	msgSpec  = "spec"
	msgReady = "ready"
	msgFail  = "fail"
	msgVCPUs = "vcpus"
	msgOK    = "ok"
	msgError = "error"

	// pidMax is PID_MAX_LIMIT, the largest pid or tid Linux hands out.
	pidMax = 1 << 22

	// goAheadTimeout bounds how long the child waits for the spec, that is
	// for OnStart (cgroup placement) to finish.
	goAheadTimeout = 60 * time.Second
	// readyTimeout bounds Enter as seen by Start.
	readyTimeout = 30 * time.Second
	// reportTimeout bounds ReportThreads' wait for OnVCPUThreads.
	reportTimeout = 30 * time.Second
	// writeTimeout bounds any single write (the message always fits the
	// socket buffer, so only a wedged peer could make it block).
	writeTimeout = 5 * time.Second
)

// formatMsg builds one message: a keyword, optionally a space and a body.
func formatMsg(kind, body string) []byte {
	if body == "" {
		return []byte(kind + "\n")
	}
	return []byte(kind + " " + body + "\n")
}

// parseMsg splits one received datagram into keyword and body. It refuses
// an empty or oversized datagram, a missing final newline, and any other
// newline or NUL.
func parseMsg(b []byte, max int) (kind, body string, err error) {
	if len(b) == 0 {
		return "", "", errors.New("empty message")
	}
	if len(b) > max {
		return "", "", fmt.Errorf("message longer than %d bytes", max)
	}
	if b[len(b)-1] != '\n' {
		return "", "", errors.New("message does not end in a newline")
	}
	s := string(b[:len(b)-1])
	if strings.ContainsAny(s, "\n\x00") {
		return "", "", errors.New("message holds a newline or NUL")
	}
	kind, body, _ = strings.Cut(s, " ")
	return kind, body, nil
}

// sanitize makes untrusted text safe to put into an error: printable
// ASCII only, at most maxText bytes.
func sanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < maxText; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	if len(s) > maxText {
		b.WriteString("...")
	}
	return b.String()
}

// formatTIDs and parseTIDs are the body of a "vcpus" message.
func formatTIDs(tids []int) string {
	parts := make([]string, len(tids))
	for i, t := range tids {
		parts[i] = strconv.Itoa(t)
	}
	return strings.Join(parts, " ")
}

// parseTIDs parses untrusted TIDs: 1..MaxVCPUThreads of them, single
// spaces, canonical decimals in 1..pidMax, no duplicates.
func parseTIDs(body string) ([]int, error) {
	if body == "" {
		return nil, errors.New("no thread ids")
	}
	parts := strings.Split(body, " ")
	if len(parts) > MaxVCPUThreads {
		return nil, fmt.Errorf("%d thread ids (at most %d)", len(parts), MaxVCPUThreads)
	}
	seen := make(map[int]bool, len(parts))
	tids := make([]int, 0, len(parts))
	for _, p := range parts {
		if p == "" || len(p) > 7 || p[0] == '0' {
			return nil, fmt.Errorf("bad thread id %q", sanitize(p))
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return nil, fmt.Errorf("bad thread id %q", sanitize(p))
			}
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > pidMax {
			return nil, fmt.Errorf("bad thread id %q", sanitize(p))
		}
		if seen[n] {
			return nil, fmt.Errorf("thread id %d reported twice", n)
		}
		seen[n] = true
		tids = append(tids, n)
	}
	return tids, nil
}
