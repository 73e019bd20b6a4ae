package disk

// sysSyncfs is syncfs(2) on linux/amd64; the syscall package has no name for it.
const sysSyncfs = 306
