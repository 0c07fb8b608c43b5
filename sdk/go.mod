module github.com/weir-broker/weir/sdk

go 1.24
