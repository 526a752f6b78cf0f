module github.com/govmm/govmm

go 1.26.8

require (
	github.com/seccomp/libseccomp-golang v0.11.1
	github.com/u-root/mkuimage v0.0.0-20250701161901-6a9871f2e64f
	golang.org/x/sys v0.50.0
)

require (
	github.com/pierrec/lz4/v4 v4.1.14 // indirect
	github.com/u-root/uio v0.0.0-20240209044354-b3d14b93376a // indirect
)
