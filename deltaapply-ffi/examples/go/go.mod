module example.com/deltaapply-update

go 1.19
