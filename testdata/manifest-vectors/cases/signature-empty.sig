deltapack-signatures v1
