module mtlsd.test/interop

go 1.19
