package jail

// The child side of the end-to-end tests: TestMain runs it when the test
// binary was started by Start (it is then the jailed child) or by
// TestSupervisorKilled (it is then a supervisor the test SIGKILLs).

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const helperEnv = "_GOVMM_JAIL_TEST_SUPERVISOR"

func TestMain(m *testing.M) {
	if IsChild() {
		os.Exit(childMain(os.Args[1:]))
	}
	if v := os.Getenv(helperEnv); v != "" {
		os.Exit(supervisorMain(v))
	}
	os.Exit(m.Run())
}

func errnoName(err error) string {
	if err == nil {
		return "ok"
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
	}
	return "error:" + err.Error()
}

// childMain is the jailed VMM stand-in. args[0] is the scenario.
func childMain(args []string) int {
	// Signals must be caught before Enter: as PID 1 of its namespace the
	// child gets SIGTERM only while it has a handler.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	c, err := Enter()
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "child: no scenario")
		return 1
	}
	say := func(f string, a ...any) { fmt.Printf(f+"\n", a...) }
	switch args[0] {
	case "basic":
		say("entered %d", os.Getpid())
		_, err := os.OpenFile("/kernel", os.O_RDWR, 0)
		say("rowrite %s", errnoName(err))
		b, err := os.ReadFile("/kernel")
		say("roread %s %q", errnoName(err), b)
		f, err := os.OpenFile("/disks/rw", os.O_RDWR, 0)
		if err == nil {
			_, err = f.WriteAt([]byte("written in the jail"), 0)
			f.Close()
		}
		say("rwwrite %s", errnoName(err))
		_, err = os.Stat("/etc/passwd")
		say("passwd %s", errnoName(err))
		_, err = os.Stat("/proc/self")
		say("proc %s", errnoName(err))
		err = os.WriteFile("/newfile", nil, 0o600)
		say("rootwrite %s", errnoName(err))
		kvm, err := unix.Open("/dev/kvm", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil {
			v, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(kvm), 0xAE00, 0) // KVM_GET_API_VERSION
			unix.Close(kvm)
			if e != 0 {
				err = e
			} else {
				say("kvmapi %d", v)
			}
		}
		say("kvm %s", errnoName(err))
		tun, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(tun)
		}
		say("tun %s", errnoName(err))
		host, _ := os.Hostname()
		say("hostname %s", host)
		extra := os.NewFile(FirstExtraFD, "extra")
		_, err = extra.Write([]byte("extra fd ok\n"))
		say("extra %s", errnoName(err))
		extra.Close()
		err = unix.Setuid(0)
		say("setuid0 %s", errnoName(err))

		tids := lockedThreads(2)
		say("tids %s", formatTIDs(tids))
		err = c.ReportThreads(tids)
		say("reported %s", errnoName(err))
		say("waiting")
		return waitStdinOrTerm(sigs)
	case "report-only":
		err := c.ReportThreads(lockedThreads(1))
		say("reported %v", err)
		return waitStdinOrTerm(sigs)
	case "bogus-report":
		// A compromised child sends garbage; the supervisor must refuse it.
		_ = writeMsg(c.ctl, formatMsg(msgVCPUs, "1 1 x"))
		_, body, err := readMsg(c.ctl, maxReplyMsg, 5*time.Second)
		say("bogus %v %s", err, body)
		return waitStdinOrTerm(sigs)
	case "foreign-tid":
		// The child names a thread that is not its own (its pid ns has
		// none but its own, but try a plausible host tid anyway).
		err := c.ReportThreads([]int{os.Getpid() + 4000000})
		say("foreign %v", err)
		return waitStdinOrTerm(sigs)
	case "plain":
		say("plain %d", os.Getpid())
		return waitStdinOrTerm(sigs)
	}
	fmt.Fprintln(os.Stderr, "child: unknown scenario", args[0])
	return 1
}

// lockedThreads starts n goroutines locked to their own threads and
// returns the TIDs (the vCPU threads of this stand-in VMM).
func lockedThreads(n int) []int {
	ch := make(chan int)
	for i := 0; i < n; i++ {
		go func() {
			runtime.LockOSThread()
			ch <- unix.Gettid()
			select {}
		}()
	}
	tids := make([]int, n)
	for i := range tids {
		tids[i] = <-ch
	}
	return tids
}

// waitStdinOrTerm returns 0 when stdin reaches EOF and 7 on SIGTERM.
func waitStdinOrTerm(sigs chan os.Signal) int {
	eof := make(chan struct{})
	go func() {
		r := bufio.NewReader(os.Stdin)
		for {
			if _, err := r.ReadString('\n'); err != nil {
				close(eof)
				return
			}
		}
	}()
	select {
	case <-eof:
		return 0
	case <-sigs:
		return 7
	}
}

// supervisorMain is a supervisor in its own process: it starts a jail
// (BaseDir and id from v, "BASE:ID"), prints the child's pid and waits to
// be killed.
func supervisorMain(v string) int {
	base, id, _ := strings.Cut(v, ":")
	r, w, _ := os.Pipe()
	j, err := Start(Spec{ID: id, Isolate: true, BaseDir: base, Args: []string{"plain"}, Stdin: r, Stderr: os.Stderr})
	if err != nil {
		fmt.Println("start error:", err)
		return 1
	}
	fmt.Println("child", j.Pid())
	time.Sleep(time.Minute)
	w.Close()
	return 0
}
