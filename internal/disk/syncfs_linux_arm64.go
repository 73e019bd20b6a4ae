package disk

// sysSyncfs is syncfs(2) on linux/arm64; the syscall package names it too, but not on amd64.
const sysSyncfs = 267
