module github.com/batonhq/baton/bench

go 1.26.8

replace github.com/batonhq/baton => ../
