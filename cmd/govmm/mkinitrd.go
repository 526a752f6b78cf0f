package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/govmm/govmm/internal/initrd"
	"github.com/govmm/govmm/vmm"
)

const mkinitrdUsage = "usage: govmm mkinitrd -o FILE [--file HOST:GUEST]... (--init BINARY | BINARY)"

// cmdMkinitrd packs a static binary as /init, plus any --file, into an
// uncompressed newc initramfs for --initrd. The same input always gives the
// same bytes, so an initrd can be checked in or compared by hash.
func cmdMkinitrd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("govmm mkinitrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// A bad flag gets the flag package's one-line reason and nothing more;
	// the flag list is for -h.
	fs.Usage = func() {}
	out := fs.String("o", "", "write the initramfs to `FILE` (required; - for stdout)")
	initPath := fs.String("init", "", "static x86-64 ELF `BINARY` to run as /init (or give it as the argument)")
	var files []initrd.FileSpec
	fs.Func("file", "copy host file to the guest path, `HOST:GUEST` (repeatable; GUEST absolute)", func(s string) error {
		spec, err := initrd.ParseFileSpec(s)
		if err != nil {
			return err
		}
		files = append(files, spec)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, mkinitrdUsage)
			fs.PrintDefaults()
			return 0
		}
		return vmm.CodeUsage // flag already printed the reason
	}
	switch {
	case fs.NArg() > 1:
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("mkinitrd: unexpected argument %q (%s)", fs.Arg(1), mkinitrdUsage))
	case fs.NArg() == 1 && *initPath != "":
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("mkinitrd: init given twice, as --init %q and as argument %q", *initPath, fs.Arg(0)))
	case fs.NArg() == 1:
		*initPath = fs.Arg(0)
	}
	if *initPath == "" {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("mkinitrd: no init binary (%s)", mkinitrdUsage))
	}
	if *out == "" {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("mkinitrd: -o FILE is required (%s)", mkinitrdUsage))
	}
	if *out == "-" {
		// Build checks all input before its first write, so a rejected
		// input leaves stdout empty.
		w := bufio.NewWriterSize(stdout, 1<<20)
		err := initrd.Build(w, *initPath, files)
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			return fail(stderr, buildCode(err), fmt.Errorf("mkinitrd: %w", err))
		}
		return 0
	}
	if code, err := writeInitrd(*out, *initPath, files); err != nil {
		return fail(stderr, code, fmt.Errorf("mkinitrd: %w", err))
	}
	return 0
}

// writeInitrd writes to a temporary file beside out and renames it into
// place, so a failed or interrupted run never leaves a truncated initrd
// that a later `govmm run --initrd` would boot. The exit code says whose
// fault a failure is: bad input (including an -o where no file can be
// created) is a usage error, a failed write a VMM error.
func writeInitrd(out, init string, files []initrd.FileSpec) (code int, err error) {
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*.tmp")
	if err != nil {
		// Name the directory, not the temporary file the user never chose.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return vmm.CodeUsage, fmt.Errorf("-o %s: cannot create a file in %s: %w", out, filepath.Dir(out), err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := initrd.Build(w, init, files); err != nil {
		return buildCode(err), err
	}
	if err := w.Flush(); err != nil {
		return vmm.CodeError, fmt.Errorf("-o %s: %w", out, err)
	}
	// CreateTemp makes the file 0600; an initrd holds nothing secret that
	// its inputs did not, and is read by whoever runs the VM.
	if err := tmp.Chmod(0o644); err != nil {
		return vmm.CodeError, fmt.Errorf("-o %s: %w", out, err)
	}
	if err := tmp.Close(); err != nil {
		return vmm.CodeError, fmt.Errorf("-o %s: %w", out, err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return vmm.CodeError, fmt.Errorf("-o %s: %w", out, err)
	}
	return 0, nil
}

// buildCode is the exit code for an initrd.Build error: the user's input
// is a usage error, anything else (a failed write) a VMM error.
func buildCode(err error) int {
	if errors.Is(err, initrd.ErrInput) {
		return vmm.CodeUsage
	}
	return vmm.CodeError
}
