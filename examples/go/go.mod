module github.com/zipdeploy/zipdeploy/examples/go

go 1.19
