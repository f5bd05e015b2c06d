"""`tf.train.Example` message classes without importing TensorFlow.

Beam and Grain workers parse and build millions of records; importing TensorFlow
in each of them costs seconds and hundreds of MB. The messages below are built
from the same field numbers as `tensorflow/core/example/{example,feature}.proto`
in a private descriptor pool, so their bytes are identical to TensorFlow's
(tests check this against `tf.train.Example`).
"""

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
  fdp = descriptor_pb2.FileDescriptorProto(
      name="tensorflow/core/example/example.proto",
      package="tensorflow",
      syntax="proto3",
  )

  def message(name, fields, nested=()):
    msg = fdp.message_type.add(name=name)
    for nested_msg in nested:
      msg.nested_type.add().CopyFrom(nested_msg)
    for number, (field_name, label, ftype, type_name, packed) in enumerate(
        fields, start=1):
      field = msg.field.add(name=field_name, number=number, label=label,
                            type=ftype)
      if type_name:
        field.type_name = type_name
      if packed:
        field.options.packed = True
    return msg

  rep, opt = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL
  message("BytesList", [("value", rep, _F.TYPE_BYTES, None, False)])
  message("FloatList", [("value", rep, _F.TYPE_FLOAT, None, True)])
  message("Int64List", [("value", rep, _F.TYPE_INT64, None, True)])
  message("Feature", [
      ("bytes_list", opt, _F.TYPE_MESSAGE, ".tensorflow.BytesList", False),
      ("float_list", opt, _F.TYPE_MESSAGE, ".tensorflow.FloatList", False),
      ("int64_list", opt, _F.TYPE_MESSAGE, ".tensorflow.Int64List", False),
  ])
  feature = fdp.message_type[-1]
  for f in feature.field:
    f.oneof_index = 0
  feature.oneof_decl.add(name="kind")
  entry = descriptor_pb2.DescriptorProto(name="FeatureEntry")
  entry.field.add(name="key", number=1, label=opt, type=_F.TYPE_STRING)
  entry.field.add(name="value", number=2, label=opt, type=_F.TYPE_MESSAGE,
                  type_name=".tensorflow.Feature")
  entry.options.map_entry = True
  message("Features", [("feature", rep, _F.TYPE_MESSAGE,
                        ".tensorflow.Features.FeatureEntry", False)],
          nested=[entry])
  message("Example", [("features", opt, _F.TYPE_MESSAGE,
                       ".tensorflow.Features", False)])
  return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())


def _cls(name: str):
  return message_factory.GetMessageClass(
      _POOL.FindMessageTypeByName(f"tensorflow.{name}"))


Example = _cls("Example")
Features = _cls("Features")
Feature = _cls("Feature")
BytesList = _cls("BytesList")
FloatList = _cls("FloatList")
Int64List = _cls("Int64List")
