package vmm

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// deviceWorker is the thread that serves one device's data path: it waits
// in epoll on the device's ioeventfds (one per queue, signalled by KVM when
// the guest writes QueueNotify, with no exit to userspace) and calls the
// device. It runs on its own locked OS thread so that, later, the device
// seccomp filter can be applied to exactly this thread, and so that slow
// disk I/O never stalls a vCPU.
type deviceWorker struct {
	name string
	epfd int
	// stopfd is an eventfd that wakes the worker to exit.
	stopfd int
	// queueFDs[q] is queue q's ioeventfd (-1: none). Written before the
	// thread starts, read-only afterwards. A device has a handful of
	// queues, so finding the queue of an fd is a scan (queueOf).
	queueFDs []int
	notify   func(queue int)
	// retry, if set, is called after each batch of notifications and
	// returns how long until throttled work should be retried (0: none).
	retry   func() time.Duration
	done    chan struct{}
	once    sync.Once
	started bool // set by start, before the thread exists
}

func newDeviceWorker(name string, notify func(int), retry func() time.Duration) (*deviceWorker, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	stopfd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	w := &deviceWorker{name: name, epfd: epfd, stopfd: stopfd,
		notify: notify, retry: retry, done: make(chan struct{})}
	if err := w.watch(stopfd); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *deviceWorker) watch(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl(ADD): %w", err)
	}
	return nil
}

// addQueue creates the ioeventfd for queue q and watches it; the caller
// registers it with KVM.
func (w *deviceWorker) addQueue(q int) (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	if err := w.watch(fd); err != nil {
		unix.Close(fd)
		return -1, err
	}
	for len(w.queueFDs) <= q {
		w.queueFDs = append(w.queueFDs, -1)
	}
	w.queueFDs[q] = fd
	return fd, nil
}

// queueOf returns the queue whose ioeventfd is fd.
func (w *deviceWorker) queueOf(fd int) (int, bool) {
	for q, qfd := range w.queueFDs {
		if qfd == fd {
			return q, true
		}
	}
	return -1, false
}

// kick wakes the worker for queue q as KVM would on a guest QueueNotify:
// by signalling the queue's ioeventfd. It is how a notification raised on
// a vCPU thread reaches the device without the device running there.
func (w *deviceWorker) kick(q int) {
	if q < 0 || q >= len(w.queueFDs) || w.queueFDs[q] < 0 {
		return
	}
	one := [8]byte{1}
	// EAGAIN means the counter is saturated: the worker is woken anyway.
	_, _ = unix.Write(w.queueFDs[q], one[:])
}

// start launches the worker thread. park is called on that thread once it
// is locked and must return true before the worker serves anything (it is
// where the thread is confined).
func (w *deviceWorker) start(park func(tid int) bool) {
	w.started = true
	go w.loop(park)
}

func (w *deviceWorker) loop(park func(tid int) bool) {
	runtime.LockOSThread() // never unlocked: see vcpu.loop
	defer close(w.done)
	if !park(unix.Gettid()) {
		return
	}
	events := make([]unix.EpollEvent, 8)
	var buf [8]byte
	timeout := -1
	for {
		n, err := unix.EpollWait(w.epfd, events, timeout)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			fd := int(ev.Fd)
			if fd == w.stopfd {
				return
			}
			// Drain the counter first: a kick that lands while the device
			// works then makes the fd readable again, so none is lost.
			unix.Read(fd, buf[:])
			if q, ok := w.queueOf(fd); ok {
				w.notify(q)
			}
		}
		timeout = -1
		if n == 0 && w.retry != nil {
			// The retry timer fired: let the device resume throttled work.
			for q, fd := range w.queueFDs {
				if fd >= 0 {
					w.notify(q)
				}
			}
		}
		if w.retry != nil {
			if d := w.retry(); d > 0 {
				timeout = int(d/time.Millisecond) + 1
			}
		}
	}
}

// stop ends the thread and waits for it.
func (w *deviceWorker) stop() {
	w.once.Do(func() {
		if !w.started {
			return
		}
		one := [8]byte{1}
		unix.Write(w.stopfd, one[:])
		<-w.done
	})
}

// close releases the fds; the KVM ioeventfd registrations go with the VM.
func (w *deviceWorker) close() {
	for _, fd := range w.queueFDs {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	unix.Close(w.stopfd)
	unix.Close(w.epfd)
}
